#pragma once
// The processor's per-record work without Kafka: the benchmark workload fed through the
// attribution engine over the processor's RocksDB state store, in the processor's batches (same
// order within a batch, one staged commit per batch). Separates the cost of processing from the
// cost of consuming and committing, and is repeatable enough for callgrind.
#include <cstdint>
#include <string>

#include "bench/workload_gen.hpp"

namespace revtrace::bench {

struct EngineReplayOptions {
  std::string state_dir;  // removed and re-created
  int partitions = 6;
  std::size_t batch_records = 20000;
  bool progress = false;
};

struct EngineReplayResult {
  std::uint64_t records = 0;
  std::uint64_t outputs = 0;
  std::uint64_t output_bytes = 0;
  std::uint64_t skipped = 0;
  std::uint64_t invalid = 0;
  std::uint64_t state_bytes = 0;
  std::uint64_t checkpoints = 0;  // state checkpoints that wrote something
  double seconds = 0;
};

[[nodiscard]] EngineReplayResult run_engine_replay(const WorkloadOptions& options,
                                                   const EngineReplayOptions& run);

}  // namespace revtrace::bench
