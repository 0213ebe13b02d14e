// `revtrace dev`: gateway, processor and query side in one process on an embedded
// Kafka-protocol broker (librdkafka's mock cluster). External Kafka clients (kcat, ...) can reach
// the broker at the printed address. Nothing is kept across restarts by the broker; the demo is
// regenerated at every start, and the RocksDB state under --data-dir is reset to match.
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "app/commands.hpp"
#include "app/demo.hpp"
#include "common/kafka.hpp"
#include "common/metrics.hpp"
#include "common/topics.hpp"
#include "ingest/gateway.hpp"
#include "processor/processor.hpp"
#include "projections/query_service.hpp"

namespace revtrace::app {

using namespace std::chrono_literals;

int run_dev(common::Config config, const DevOptions& options) {
  common::kafka::MockCluster broker(1);
  config.kafka.bootstrap = broker.bootstrap();
  config.kafka.replication_factor = 1;
  for (const auto& spec : common::kafka::revtrace_topics(config.kafka)) {
    broker.create_topic(spec.name, spec.partitions);
  }
  // The embedded broker forgets everything on exit, so state from an earlier run would disagree
  // with the (empty) log: start from clean state directories.
  namespace fs = std::filesystem;
  fs::remove_all(options.data_dir);
  config.processor.data_dir = (fs::path(options.data_dir) / "processor").string();
  config.query.data_dir = (fs::path(options.data_dir) / "query").string();
  fs::create_directories(config.processor.data_dir);
  fs::create_directories(config.query.data_dir);
  if (options.demo) {
    for (auto& site : demo_sites()) {
      if (config.find_site(site.id) == nullptr) config.sites.push_back(site);
    }
  }

  std::cout << "revtrace dev: embedded Kafka-protocol broker at " << config.kafka.bootstrap
            << "\n  NOTE: the embedded broker keeps everything in memory; nothing survives a "
               "restart. Use a real Kafka cluster (see README) for anything that matters.\n";

  common::metrics::Registry metrics;
  ingest::Gateway gateway(config, metrics);
  processor::Processor processor(config, metrics);
  projections::QueryService query(config, metrics);
  gateway.start();
  processor.start();
  query.start();

  if (options.demo) {
    DemoSummary summary;
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const auto records = demo_records(now_ms, 42, summary);
    common::kafka::Producer producer(config.kafka);
    for (const auto& r : records) {
      const auto topic = common::topics::name(config.kafka, r.topic);
      while (producer.produce(topic, r.key, r.value) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        (void)producer.flush(100ms);
      }
    }
    if (!producer.flush(60s)) spdlog::error("dev: demo records were not all acknowledged");
    std::cout << "revtrace dev: demo loaded: " << summary.visitors << " visitors, "
              << summary.pageviews << " pageviews, " << summary.payments << " payments ("
              << summary.stripe_events << " Stripe events) over " << demo_sites().size()
              << " sites\n"
              << std::flush;
    // The URLs below answer with the whole demo only once the processor has processed every
    // demo record and the query side has applied every record it produced (a few seconds).
    auto& produced = metrics.counter("revtrace_processor_revenue_records_total", "");
    auto& applied = metrics.counter("revtrace_query_records_applied_total", "");
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    bool ready = false;
    while (!ready && std::chrono::steady_clock::now() < deadline && processor.healthy()) {
      ready = processor.records_processed() >= records.size() && applied.value() >= produced.value();
      if (!ready) std::this_thread::sleep_for(50ms);
    }
    if (ready) {
      std::cout << "revtrace dev: demo processed: " << produced.value()
                << " attributed-revenue records in the read models\n";
    } else {
      spdlog::warn("dev: the demo is still being processed; the first answers may be partial");
    }
  }
  std::cout << "revtrace dev: gateway   http://127.0.0.1:" << gateway.port() << "/  (pixel at /revtrace.js)\n"
            << "revtrace dev: query API http://127.0.0.1:" << query.port() << "/\n";
  for (const auto& site : config.sites) {
    if (site.query_tokens.empty()) continue;
    std::cout << "  curl -H 'Authorization: Bearer " << site.query_tokens.front()
              << "' 'http://127.0.0.1:" << query.port() << "/v1/sites/" << site.id
              << "/revenue?model=last_touch&group_by=channel'\n";
  }
  std::cout << std::flush;
  wait_for_shutdown_signal();
  gateway.stop();
  processor.stop();
  query.stop();
  // Non-zero when the processor stopped on a fatal error or the gateway's shutdown flush left
  // accepted records undelivered (as `revtrace gateway` / `processor` exit).
  return processor.healthy() && gateway.delivered_everything() ? 0 : 1;
}

}  // namespace revtrace::app
