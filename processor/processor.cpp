#include "processor/processor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "common/http.hpp"
#include "common/kafka.hpp"
#include "common/topics.hpp"
#include "processor/dead_letter.hpp"
#include "processor/domain/engine.hpp"
#include "processor/state_store.hpp"

namespace revtrace::processor {

namespace kafka = common::kafka;
namespace topics = common::topics;
using namespace std::chrono_literals;

namespace {

struct ConsumerGroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* m) const noexcept {
    rd_kafka_consumer_group_metadata_destroy(m);
  }
};

domain::SiteSettings settings_of(const common::SiteConfig& site) {
  domain::SiteSettings s;
  s.site_id = site.id;
  s.lookback = site.lookback_days * 24LL * 3600 * 1000;
  for (const auto& k : site.visitor_id_keys) s.visitor_id_keys.push_back(k);
  for (const auto& k : site.session_id_keys) s.session_id_keys.push_back(k);
  s.rules.own_domains = site.own_domains;
  if (!site.affiliate_params.empty()) s.rules.affiliate_params = site.affiliate_params;
  s.email_hash_key = site.email_hash_key.empty() ? "revtrace-email:" + site.id : site.email_hash_key;
  return s;
}

}  // namespace

struct Processor::Impl {
  Impl(const common::Config& c, common::metrics::Registry& m)
      : config(c),
        metrics(m),
        records_in(m.counter("revtrace_processor_records_total", "Input records processed.")),
        revenue_out(m.counter("revtrace_processor_revenue_records_total",
                              "Attributed-revenue records emitted.")),
        dead_letters(m.counter("revtrace_processor_dead_letters_total",
                               "Records sent to the dead-letter topic.")),
        skipped(m.counter("revtrace_processor_skipped_total",
                          "Records skipped (unused Stripe event types, duplicates).")),
        commits(m.counter("revtrace_processor_transactions_total", "Transactions.",
                          "outcome=\"committed\"")),
        aborts(m.counter("revtrace_processor_transactions_total", "Transactions.",
                         "outcome=\"aborted\"")) {
    for (const auto& site : config.sites) sites.emplace(site.id, settings_of(site));
  }

  const domain::SiteSettings& site_settings(std::string_view id) {
    auto it = sites.find(std::string(id));
    if (it == sites.end()) {
      common::SiteConfig unknown;
      unknown.id = std::string(id);
      it = sites.emplace(unknown.id, settings_of(unknown)).first;
    }
    return it->second;
  }

  void open() {
    state = std::make_unique<RocksState>(config.processor.data_dir);
    staged = std::make_unique<StagedStore>(*state);
    engine = std::make_unique<domain::AttributionEngine>(
        *staged, [this](std::string_view id) -> const domain::SiteSettings& {
          return site_settings(id);
        });
    consumer = kafka::make_handle(
        RD_KAFKA_CONSUMER,
        kafka::make_conf(config.kafka, {{"group.id", config.processor.group_id},
                                        {"isolation.level", "read_committed"},
                                        {"enable.auto.commit", "false"},
                                        {"enable.auto.offset.store", "false"},
                                        {"auto.offset.reset", "earliest"},
                                        {"partition.assignment.strategy", "cooperative-sticky"}}));
    rd_kafka_poll_set_consumer(consumer.get());
    kafka::PartitionListPtr subscription(rd_kafka_topic_partition_list_new(3));
    for (auto t : topics::kInputTopics) {
      rd_kafka_topic_partition_list_add(subscription.get(), std::string(t).c_str(),
                                        RD_KAFKA_PARTITION_UA);
    }
    if (auto err = rd_kafka_subscribe(consumer.get(), subscription.get())) {
      throw std::runtime_error(std::string("processor: subscribe failed: ") + rd_kafka_err2str(err));
    }
    producer = kafka::make_handle(
        RD_KAFKA_PRODUCER,
        kafka::make_conf(config.kafka, {{"transactional.id", config.processor.group_id + "-txn"},
                                        {"enable.idempotence", "true"},
                                        {"acks", "all"},
                                        {"linger.ms", "5"},
                                        {"compression.type", "lz4"}}));
    for (;;) {
      const auto status = kafka::classify(rd_kafka_init_transactions(producer.get(), 60000));
      if (status.ok()) break;
      if (status.cls != kafka::ErrorClass::retriable) {
        throw std::runtime_error("processor: init_transactions: " + status.message);
      }
      spdlog::warn("processor: init_transactions: {} (retrying)", status.message);
    }
    metrics.gauge_fn("revtrace_processor_state_bytes", "Approximate RocksDB state size.", "",
                     [this] { return static_cast<double>(state->approximate_size()); });
  }

  void produce(std::string_view topic, std::string_view key, std::string_view value) {
    for (;;) {
      const auto err = rd_kafka_producev(
          producer.get(), RD_KAFKA_V_TOPIC(std::string(topic).c_str()),
          RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        if (err) throw std::runtime_error(std::string("processor: produce: ") + rd_kafka_err2str(err));
        return;
      }
      rd_kafka_poll(producer.get(), 10);
    }
  }

  void handle(const rd_kafka_message_t* m) {
    const std::string_view topic = rd_kafka_topic_name(m->rkt);
    const std::string_view value(static_cast<const char*>(m->payload), m->len);
    domain::Outcome outcome;
    if (topic == topics::kWebEvents) {
      outcome = engine->on_web_event(value);
    } else if (topic == topics::kCheckoutRedirects) {
      outcome = engine->on_checkout_redirect(value);
    } else {
      outcome = engine->on_stripe_event(value);
    }
    records_in.inc();
    switch (outcome.kind) {
      case domain::Outcome::Kind::applied:
        for (const auto& rec : outcome.revenue) {
          produce(topics::kAttributedRevenue, rec.key, rec.value);
          revenue_out.inc();
        }
        break;
      case domain::Outcome::Kind::skipped:
        skipped.inc();
        break;
      case domain::Outcome::Kind::invalid: {
        const auto letter = dead_letter_record(outcome.reason, m);
        produce(topics::kDeadLetter, letter.key, letter.value);
        dead_letters.inc();
        spdlog::warn("processor: dead-lettered {}[{}]@{}: {}", topic, m->partition, m->offset,
                     outcome.reason);
        break;
      }
    }
  }

  // Processes one batch in one transaction; returns false when the process must stop.
  bool process_batch(std::vector<kafka::MessagePtr>& batch) {
    // Within a batch, web evidence goes before payments: fewer intermediate revisions. The latest
    // revision does not depend on this order (the engine is order-independent by contract).
    std::stable_partition(batch.begin(), batch.end(), [](const kafka::MessagePtr& m) {
      return std::string_view(rd_kafka_topic_name(m->rkt)) != topics::kStripeEvents;
    });
    std::map<TopicPartition, std::int64_t> first;
    std::map<TopicPartition, std::int64_t> next;
    for (const auto& m : batch) {
      TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
      first.try_emplace(tp, m->offset);
      next[tp] = std::max(next[tp], m->offset + 1);
    }
    if (auto s = kafka::classify(rd_kafka_begin_transaction(producer.get())); !s.ok()) {
      spdlog::critical("processor: begin_transaction: {}", s.message);
      return false;
    }
    for (const auto& m : batch) handle(m.get());
    kafka::PartitionListPtr offsets(rd_kafka_topic_partition_list_new(static_cast<int>(next.size())));
    for (const auto& [tp, off] : next) {
      rd_kafka_topic_partition_list_add(offsets.get(), tp.topic.c_str(), tp.partition)->offset = off;
      staged->set_offset(tp, off);
    }
    std::unique_ptr<rd_kafka_consumer_group_metadata_t, ConsumerGroupMetadataDeleter> group(
        rd_kafka_consumer_group_metadata(consumer.get()));
    auto status = kafka::classify(
        rd_kafka_send_offsets_to_transaction(producer.get(), offsets.get(), group.get(), 30000));
    if (status.ok()) {
      for (;;) {
        status = kafka::classify(rd_kafka_commit_transaction(producer.get(), 60000));
        if (status.cls != kafka::ErrorClass::retriable) break;
        spdlog::warn("processor: commit_transaction: {} (retrying)", status.message);
      }
    }
    if (status.ok()) {
      staged->commit();
      commits.inc();
      return true;
    }
    if (status.cls == kafka::ErrorClass::fatal) {
      spdlog::critical("processor: fatal Kafka error: {}; exiting for the supervisor to restart",
                       status.message);
      return false;
    }
    spdlog::warn("processor: transaction aborted ({}); rewinding {} partitions", status.message,
                 first.size());
    staged->discard();
    aborts.inc();
    if (auto s = kafka::classify(rd_kafka_abort_transaction(producer.get(), 60000)); !s.ok()) {
      spdlog::critical("processor: abort_transaction: {}", s.message);
      return false;
    }
    for (const auto& [tp, off] : first) {
      kafka::PartitionListPtr rewind(rd_kafka_topic_partition_list_new(1));
      rd_kafka_topic_partition_list_add(rewind.get(), tp.topic.c_str(), tp.partition)->offset = off;
      kafka::classify(rd_kafka_seek_partitions(consumer.get(), rewind.get(), 10000));
    }
    return true;
  }

  void run() {
    std::vector<kafka::MessagePtr> batch;
    while (!stopping.load()) {
      batch.clear();
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(config.processor.transaction_interval_ms);
      while (batch.size() < 5000) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        kafka::MessagePtr m(rd_kafka_consumer_poll(
            consumer.get(), batch.empty() ? 100 : static_cast<int>(std::max(0L, left.count()))));
        if (!m) {
          if (batch.empty() && !stopping.load()) continue;
          break;
        }
        if (m->err) {
          if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            spdlog::warn("processor: consumer: {}", rd_kafka_message_errstr(m.get()));
          }
          continue;
        }
        batch.push_back(std::move(m));
        if (std::chrono::steady_clock::now() >= deadline) break;
      }
      if (batch.empty()) continue;
      try {
        if (!process_batch(batch)) {
          healthy.store(false);
          return;
        }
      } catch (const std::exception& e) {
        spdlog::critical("processor: {}", e.what());
        healthy.store(false);
        return;
      }
    }
  }

  const common::Config& config;
  common::metrics::Registry& metrics;
  common::metrics::Counter& records_in;
  common::metrics::Counter& revenue_out;
  common::metrics::Counter& dead_letters;
  common::metrics::Counter& skipped;
  common::metrics::Counter& commits;
  common::metrics::Counter& aborts;
  std::map<std::string, domain::SiteSettings> sites;
  std::unique_ptr<RocksState> state;
  std::unique_ptr<StagedStore> staged;
  std::unique_ptr<domain::AttributionEngine> engine;
  kafka::HandlePtr consumer;
  kafka::HandlePtr producer;
  std::unique_ptr<common::http::Server> http;
  std::atomic<bool> stopping{false};
  std::atomic<bool> healthy{true};
  std::thread worker;
};

Processor::Processor(const common::Config& config, common::metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(config, metrics)) {}

Processor::~Processor() { stop(); }

void Processor::start() {
  impl_->open();
  const auto ep = common::parse_endpoint(impl_->config.processor.metrics_listen,
                                         "processor.metrics_listen");
  common::http::ServerOptions opts;
  opts.host = ep.host;
  opts.port = ep.port;
  opts.threads = 1;
  Impl* impl = impl_.get();
  impl_->http = std::make_unique<common::http::Server>(
      opts, [impl](common::http::Request&& req, common::http::Responder respond) {
        namespace http = common::http;
        if (req.target() == "/healthz") {
          respond(impl->healthy.load()
                      ? http::json_response(http::Status::ok, R"({"status":"ok"})")
                      : http::json_error(http::Status::service_unavailable, "unhealthy",
                                         "the processing thread stopped on a fatal error"));
        } else if (req.target() == "/metrics") {
          http::Response res{http::Status::ok, req.version()};
          res.set(boost::beast::http::field::content_type, "text/plain; version=0.0.4");
          res.body() = impl->metrics.render();
          res.prepare_payload();
          respond(std::move(res));
        } else {
          respond(http::json_error(http::Status::not_found, "not_found", "no such route"));
        }
      });
  impl_->http->start();
  impl_->worker = std::thread([impl] { impl->run(); });
  spdlog::info("processor: consuming {} input topics as group {}; metrics on {}:{}",
               topics::kInputTopics.size(), impl_->config.processor.group_id, opts.host,
               impl_->http->port());
}

void Processor::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  if (impl_->worker.joinable()) impl_->worker.join();
  if (impl_->consumer) rd_kafka_consumer_close(impl_->consumer.get());
  if (impl_->http) impl_->http->stop(1s);
}

bool Processor::healthy() const noexcept { return impl_->healthy.load(); }

}  // namespace revtrace::processor
