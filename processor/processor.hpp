#pragma once
// revtrace::processor — the stateful consumer of the input topics. It feeds every record to the
// pure attribution engine (processor/domain), keeps the engine's state in RocksDB and emits
// attributed-revenue records (or dead letters). See processor/README.md.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "common/config.hpp"
#include "common/metrics.hpp"

namespace revtrace::processor {

class Processor {
 public:
  Processor(const common::Config& config, common::metrics::Registry& metrics);
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // Opens the state store, joins the consumer group and starts the processing thread.
  void start();
  // Finishes the current batch, commits, leaves the group and closes the store.
  void stop();
  // False once the processing thread hit a fatal error (the process should exit non-zero).
  [[nodiscard]] bool healthy() const noexcept;
  // Next offset to fetch of every assigned input partition, keyed by (topic, partition).
  [[nodiscard]] std::map<std::pair<std::string, std::int32_t>, std::int64_t> positions() const;
  // Records processed so far (live and replayed with output suppressed).
  [[nodiscard]] std::uint64_t records_processed() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace revtrace::processor
