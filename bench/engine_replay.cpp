#include "bench/engine_replay.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include "processor/domain/engine.hpp"
#include "processor/state_store.hpp"

namespace revtrace::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Kafka's murmur2 (the Java client's Utils.murmur2), so records land on the partitions the
// processor would own them in.
std::int32_t murmur2(std::string_view data) {
  const std::uint32_t m = 0x5bd1e995;
  const int r = 24;
  const auto length = static_cast<std::uint32_t>(data.size());
  std::uint32_t h = 0x9747b28c ^ length;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::uint32_t i = 0;
  for (; i + 4 <= length; i += 4) {
    std::uint32_t k = p[i] | (p[i + 1] << 8) | (p[i + 2] << 16) | (static_cast<std::uint32_t>(p[i + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length - i) {
    case 3: h ^= static_cast<std::uint32_t>(p[i + 2]) << 16; [[fallthrough]];
    case 2: h ^= static_cast<std::uint32_t>(p[i + 1]) << 8; [[fallthrough]];
    case 1: h ^= p[i]; h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<std::int32_t>(h);
}

struct Input {
  int topic = 0;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string value;
};

struct PartitionEngine {
  PartitionEngine(processor::StateCache& cache, std::int32_t partition,
                  std::function<const domain::SiteSettings&(std::string_view)> settings)
      : store(cache, partition), engine(store, std::move(settings)) {}
  processor::PartitionStore store;
  domain::AttributionEngine engine;
};

}  // namespace

EngineReplayResult run_engine_replay(const WorkloadOptions& options, const EngineReplayOptions& run) {
  // The whole input first, so that the measured part is processing alone.
  std::vector<Input> inputs;
  std::map<std::pair<int, std::int32_t>, std::int64_t> next_offset;
  WorkloadStats stats;
  generate(options, [&](std::vector<Record>& chunk) {
    for (auto& r : chunk) {
      const std::int32_t p = (murmur2(r.key) & 0x7fffffff) % run.partitions;
      inputs.push_back({r.topic, p, next_offset[{r.topic, p}]++, std::move(r.value)});
    }
    return true;
  }, stats);

  std::filesystem::remove_all(run.state_dir);
  processor::RocksState state(run.state_dir);
  processor::StateCache cache(state);
  std::map<std::string, domain::SiteSettings, std::less<>> sites;
  auto settings = [&](std::string_view id) -> const domain::SiteSettings& {
    auto it = sites.find(id);
    if (it == sites.end()) {
      domain::SiteSettings s;
      s.site_id = std::string(id);
      s.email_hash_key = "revtrace-email:" + s.site_id;
      it = sites.emplace(s.site_id, std::move(s)).first;
    }
    return it->second;
  };
  std::map<std::int32_t, std::unique_ptr<PartitionEngine>> engines;
  const std::string topic_names[] = {"revtrace.web-events.v1", "revtrace.checkout-redirects.v1",
                                     "revtrace.stripe-events.v1"};

  EngineReplayResult result;
  result.records = inputs.size();
  const auto start = Clock::now();
  std::vector<const Input*> batch;
  for (std::size_t from = 0; from < inputs.size(); from += run.batch_records) {
    const std::size_t to = std::min(inputs.size(), from + run.batch_records);
    batch.clear();
    for (std::size_t i = from; i < to; ++i) batch.push_back(&inputs[i]);
    // The processor's order within a batch: web evidence, redirects, payments; then offsets.
    std::stable_sort(batch.begin(), batch.end(), [](const Input* a, const Input* b) {
      if (a->topic != b->topic) return a->topic < b->topic;
      if (a->partition != b->partition) return a->partition < b->partition;
      return a->offset < b->offset;
    });
    std::map<processor::TopicPartition, std::int64_t> offsets;
    for (const Input* in : batch) {
      auto it = engines.find(in->partition);
      if (it == engines.end()) {
        it = engines.emplace(in->partition,
                             std::make_unique<PartitionEngine>(cache, in->partition, settings))
                 .first;
      }
      auto& engine = it->second->engine;
      const auto outcome = in->topic == 0   ? engine.on_web_event(in->value)
                           : in->topic == 1 ? engine.on_checkout_redirect(in->value)
                                            : engine.on_stripe_event(in->value);
      switch (outcome.kind) {
        case domain::Outcome::Kind::applied:
          for (const auto& rec : outcome.revenue) {
            ++result.outputs;
            result.output_bytes += rec.value.size();
          }
          break;
        case domain::Outcome::Kind::skipped:
          ++result.skipped;
          break;
        case domain::Outcome::Kind::invalid:
          ++result.invalid;
          break;
      }
      auto& off = offsets[{topic_names[in->topic], in->partition}];
      off = std::max(off, in->offset + 1);
    }
    for (const auto& [tp, off] : offsets) cache.set_offset(tp, off);
    cache.commit();
    if (cache.checkpoint_due()) {
      cache.checkpoint(false);
    } else {
      cache.trim();
    }
    if (run.progress && (from / run.batch_records) % 50 == 49) {
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      std::cerr << "engine: " << to << " records, " << static_cast<std::uint64_t>(to / secs)
                << " records/s\n";
    }
  }
  cache.checkpoint(true);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.state_bytes = state.approximate_size();
  result.checkpoints = cache.wal_checkpoints() + cache.ingested_checkpoints();
  return result;
}

}  // namespace revtrace::bench
