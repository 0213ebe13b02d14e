// `revtrace replay`: rebuild all processor state and re-emit attribution from offset 0 — the
// answer to "we changed the rules, recompute everything". Run it with the processors stopped:
// it deletes the group's committed offsets (refused by the broker while members are active) and
// this instance's local state, processes every input record to the end offsets seen at start,
// reporting progress and throughput, and exits. Start the processors again afterwards: they find
// the state current (this instance), or — on other hosts, once processor.generation was bumped
// there too — find their state built by another generation, drop it and rebuild their partitions
// from the log (processor/RECOVERY.md, "Rebuild everything").
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "app/commands.hpp"
#include "common/kafka.hpp"
#include "common/metrics.hpp"
#include "common/topics.hpp"
#include "processor/processor.hpp"

namespace revtrace::app {

namespace kafka = common::kafka;
using namespace std::chrono_literals;

namespace {

struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const noexcept { rd_kafka_event_destroy(e); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const noexcept { rd_kafka_queue_destroy(q); }
};

// Deletes the consumer group (and so its committed offsets). Empty string on success.
std::string delete_group(const common::Config& config) {
  auto rk = kafka::make_handle(RD_KAFKA_PRODUCER, kafka::make_conf(config.kafka, {}));
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk.get()));
  rd_kafka_DeleteGroup_t* group = rd_kafka_DeleteGroup_new(config.processor.group_id.c_str());
  rd_kafka_DeleteGroups(rk.get(), &group, 1, nullptr, queue.get());
  rd_kafka_DeleteGroup_destroy(group);
  std::unique_ptr<rd_kafka_event_t, EventDeleter> ev(rd_kafka_queue_poll(queue.get(), 30000));
  if (!ev) return "timed out deleting the consumer group";
  if (rd_kafka_event_error(ev.get())) return rd_kafka_event_error_string(ev.get());
  size_t n = 0;
  const rd_kafka_group_result_t** results =
      rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev.get()), &n);
  for (size_t i = 0; i < n; ++i) {
    const rd_kafka_error_t* err = rd_kafka_group_result_error(results[i]);
    if (err == nullptr) continue;
    const auto code = rd_kafka_error_code(err);
    if (code == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) continue;  // nothing committed yet
    if (code == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP) {
      return "the consumer group '" + config.processor.group_id +
             "' still has active members: stop every `revtrace processor` first";
    }
    return rd_kafka_error_string(err);
  }
  return {};
}

}  // namespace

int run_replay(common::Config config) {
  if (auto err = delete_group(config); !err.empty()) {
    std::cerr << "replay: " << err << "\n";
    return 1;
  }
  std::filesystem::remove_all(config.processor.data_dir);
  std::filesystem::create_directories(config.processor.data_dir);

  // The end of the log now: the replay is complete when every partition's position reaches it.
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> ends;
  {
    kafka::Admin admin(config.kafka);
    std::vector<std::string> names;
    for (auto t : common::topics::kInputTopics) names.push_back(common::topics::name(config.kafka, t));
    auto rk = kafka::make_handle(RD_KAFKA_CONSUMER,
                                 kafka::make_conf(config.kafka, {{"group.id", "revtrace-replay-probe"},
                                                                 {"isolation.level", "read_committed"}}));
    for (const auto& st : admin.describe(names, 10s)) {
      if (st.partitions == 0) {
        std::cerr << "replay: topic " << st.name << " does not exist (revtrace topics create)\n";
        return 1;
      }
      for (int p = 0; p < st.partitions; ++p) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        if (auto e = rd_kafka_query_watermark_offsets(rk.get(), st.name.c_str(), p, &low, &high, 10000)) {
          std::cerr << "replay: cannot read the end of " << st.name << "[" << p
                    << "]: " << rd_kafka_err2str(e) << "\n";
          return 1;
        }
        if (high > low) ends[{st.name, p}] = high;
      }
    }
  }
  std::int64_t total = 0;
  for (const auto& [tp, end] : ends) total += end;
  std::cout << "replay: group " << config.processor.group_id << ", generation "
            << config.processor.generation << ": " << total << " offsets in " << ends.size()
            << " non-empty partitions; state reset at " << config.processor.data_dir << "\n"
            << std::flush;

  common::metrics::Registry metrics;
  processor::Processor processor(config, metrics);
  const auto start = std::chrono::steady_clock::now();
  processor.start();
  auto done = [&] {
    const auto pos = processor.positions();
    for (const auto& [tp, end] : ends) {
      auto it = pos.find(tp);
      if (it == pos.end() || it->second < end) return false;
    }
    return true;
  };
  auto last_report = start;
  while (!done()) {
    if (!processor.healthy()) {
      std::cerr << "replay: the processor stopped on a fatal error\n";
      return 1;
    }
    std::this_thread::sleep_for(50ms);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report >= 2s) {
      last_report = now;
      const double secs = std::chrono::duration<double>(now - start).count();
      const auto n = processor.records_processed();
      std::cout << "replay: " << n << " records (" << (total ? 100.0 * n / total : 100.0)
                << " %), " << static_cast<std::uint64_t>(n / secs) << " records/s\n"
                << std::flush;
    }
  }
  processor.stop();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto n = processor.records_processed();
  std::cout << "replay: done: " << n << " records in " << secs << " s = "
            << static_cast<std::uint64_t>(n / std::max(secs, 1e-9)) << " records/s\n";
  return processor.healthy() ? 0 : 1;
}

}  // namespace revtrace::app
