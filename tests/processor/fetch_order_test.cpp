// Kafka orders records within a partition, not across topics. After an assignment each input
// partition starts fetching on its own, so a payment's Stripe event can be fetched seconds before
// the pageviews written before it. The processor holds a partition number's records until each of
// its input partitions was fetched once; without that, it emits an unattributed revision first and
// then revises it. After that first fetch, event-time alignment holds a payment while the
// web-events partition still has earlier records to deliver, unless that partition went silent
// for 10 s (kAlignStall in processor.cpp): a stalled fetch must not hold payments back for the
// whole of processor.event_time_max_wait_ms.
//
// The delays are injected with librdkafka's mock cluster (fault injection, not exactly-once: the
// outcome checked is the order of processing). The web-events partitions are led by broker 2, whose
// fetch responses are delayed; everything else lives on broker 1. Each TEST_CASE is its own ctest
// test (tests/processor/CMakeLists.txt).
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <algorithm>
#include <filesystem>

#include "common/config.hpp"
#include "common/kafka.hpp"
#include "common/metrics.hpp"
#include "common/topics.hpp"
#include "processor/processor.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/workload.hpp"

using namespace revtrace;
using namespace revtrace::testing;
using namespace std::chrono_literals;

namespace {

constexpr int kFetchApiKey = 1;  // the Kafka protocol's Fetch request
constexpr int kSlowFetchMs = 3000;
constexpr int kBacklog = 60000;

std::string pageview(const std::string& site, const std::string& visitor, const std::string& id,
                     std::int64_t at, const std::string& url) {
  return R"({"event_id":")" + id + R"(","type":"pageview","site_id":")" + site +
         R"(","visitor_id":")" + visitor + R"(","occurred_at":)" + std::to_string(at) +
         R"(,"received_at":)" + std::to_string(at + 20) + R"(,"url":")" + url + R"("})";
}

std::string checkout_completed(const std::string& site, std::int64_t paid_s) {
  const std::string session =
      R"({"id":"cs_order1","object":"checkout.session","amount_total":4900,"currency":"usd","payment_status":"paid","status":"complete","mode":"payment","livemode":true,"client_reference_id":null,"customer":null,"customer_details":{"email":"buyer@example.com"},"payment_intent":"pi_order1","payment_link":null,"metadata":{"revtrace_visitor_id":"v1"},"created":)" +
      std::to_string(paid_s) + "}";
  return stripe_envelope(site, "evt_order1", "checkout.session.completed", paid_s, session,
                         paid_s * 1000 + 500);
}

struct MockDeployment {
  common::Config config;
  std::string web, stripe, revenue;  // the topics' names
};

// A one-site, one-thread processor's configuration on `broker` (two mock brokers), with the
// revtrace topics created: the web-events partitions led by broker 2, whose fetches the tests
// delay, every other partition and the group's coordinator on broker 1.
MockDeployment mock_deployment(common::kafka::MockCluster& broker, const std::string& name,
                               const std::string& site) {
  rd_kafka_mock_cluster_t* mock = broker.native();
  common::Config config;
  config.kafka.bootstrap = broker.bootstrap();
  config.kafka.replication_factor = 1;
  config.processor.data_dir = temp_dir("revtrace-" + name) + "/processor";
  config.processor.group_id = name;
  config.processor.metrics_listen = "127.0.0.1:0";
  config.processor.threads = 1;
  std::filesystem::create_directories(config.processor.data_dir);
  common::SiteConfig site_config;
  site_config.id = site;
  config.sites.push_back(site_config);
  const std::string web = common::topics::name(config.kafka, common::topics::kWebEvents);
  for (const auto& spec : common::kafka::revtrace_topics(config.kafka)) {
    broker.create_topic(spec.name, spec.partitions);
    for (int p = 0; p < spec.partitions; ++p) {
      REQUIRE(rd_kafka_mock_partition_set_leader(mock, spec.name.c_str(), p,
                                                 spec.name == web ? 2 : 1) == 0);
    }
  }
  REQUIRE(rd_kafka_mock_coordinator_set(mock, "group", config.processor.group_id.c_str(), 1) == 0);
  return {config, web, common::topics::name(config.kafka, common::topics::kStripeEvents),
          common::topics::name(config.kafka, common::topics::kAttributedRevenue)};
}

// Produces one record with the Kafka timestamp (CreateTime) `timestamp_ms`, the clock the
// event-time alignment compares, instead of the producer's wall clock.
rd_kafka_resp_err_t produce_at(common::kafka::Producer& producer, const std::string& topic,
                               const std::string& key, const std::string& value,
                               std::int64_t timestamp_ms) {
  return rd_kafka_producev(producer.handle(), RD_KAFKA_V_TOPIC(topic.c_str()),
                           RD_KAFKA_V_KEY(key.data(), key.size()),
                           RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                           RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_END);
}

// The processor's position (next offset to deliver) in `topic`: the largest over its assigned
// partitions, -1 before any was positioned.
std::int64_t position(const processor::Processor& processor, const std::string& topic) {
  std::int64_t out = -1;
  for (const auto& [tp, offset] : processor.positions()) {
    if (tp.first == topic) out = std::max(out, offset);
  }
  return out;
}

// The records' values, one per line (for a failure's message).
std::string values_of(const std::vector<TopicRecord>& out) {
  std::string values;
  for (const auto& r : out) values += r.value + "\n";
  return values;
}

// The output is one record: the checkout's 4900 under pi_order1, credited to the newsletter
// pageview alone.
void check_one_newsletter_record(const std::vector<TopicRecord>& out) {
  REQUIRE(out.size() == 1);
  simdjson::dom::parser parser;
  simdjson::dom::element rec = parser.parse(out[0].value);
  CHECK(std::string_view(rec["payment_key"]) == "pi_order1");
  CHECK(int64_t(rec["amount"]) == 4900);
  simdjson::dom::array touches = rec["touches"];
  REQUIRE(touches.size() == 1);
  CHECK(std::string_view(touches.at(0)["source"]) == "newsletter");
}

}  // namespace

TEST_CASE("a payment fetched before its pageviews waits for them: one attributed revision",
          "[fetch_order]") {
  common::kafka::MockCluster broker(2);
  rd_kafka_mock_cluster_t* mock = broker.native();
  const std::string site = "order-shop";
  const auto [config, web, stripe, revenue] = mock_deployment(broker, "fetch-order", site);

  // The pageviews are written first, the payment after them.
  const std::int64_t t0 = 1790000000000;
  {
    common::kafka::Producer producer(config.kafka);
    REQUIRE(producer.produce(web, site, pageview(site, "v1", "pv1", t0,
                                                 "https://order-shop.example/?utm_source=newsletter&utm_medium=email")) == 0);
    REQUIRE(producer.produce(web, site, pageview(site, "v1", "pv2", t0 + 5000,
                                                 "https://order-shop.example/pricing")) == 0);
    REQUIRE(producer.flush(30s));
    REQUIRE(producer.produce(stripe, site, checkout_completed(site, t0 / 1000 + 60)) == 0);
    // A backlog behind it, more than one batch (50,000 records) of Stripe events revtrace does
    // not use: the records waiting must not stop the polling that brings the pageviews.
    for (int i = 0; i < kBacklog; ++i) {
      const auto id = "evt_customer" + std::to_string(i);
      while (producer.produce(stripe, site,
                              stripe_envelope(site, id, "customer.created", t0 / 1000 + 61,
                                              R"({"id":"cus_1","object":"customer"})",
                                              t0 + 61000)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        (void)producer.flush(100ms);
      }
    }
    REQUIRE(producer.flush(30s));
  }
  // From now on broker 2 answers its next fetches late: the processor's web-events partitions
  // deliver their records seconds after the Stripe partition delivered the payment.
  REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(mock, 2, kFetchApiKey, 2,
                                                       RD_KAFKA_RESP_ERR_NO_ERROR, kSlowFetchMs,
                                                       RD_KAFKA_RESP_ERR_NO_ERROR, kSlowFetchMs) == 0);

  common::metrics::Registry metrics;
  processor::Processor processor(config, metrics);
  processor.start();
  std::vector<TopicRecord> out;
  const bool attributed = wait_until(60s, [&] {
    out = read_topic(config.kafka.bootstrap, revenue);
    for (const auto& r : out) {
      if (r.value.find("\"newsletter\"") != std::string::npos) return true;
    }
    return false;
  }, 100ms);
  // Everything was processed (the positions cover every input record) before the output is judged.
  const bool all_processed = wait_until(30s, [&] {
    const auto pos = processor.positions();
    auto at = [&](const std::string& topic, std::int64_t end) {
      for (const auto& [tp, offset] : pos) {
        if (tp.first == topic && offset >= end) return true;
      }
      return false;
    };
    return at(web, 2) && at(stripe, 1 + kBacklog);
  }, 100ms);
  processor.stop();
  REQUIRE(processor.healthy());
  out = read_topic(config.kafka.bootstrap, revenue);
  INFO("attributed-revenue records:\n" << values_of(out));
  REQUIRE(attributed);
  REQUIRE(all_processed);
  // The wait ended because the pageviews came, not because it gave up on them.
  CHECK(metrics.counter("revtrace_processor_first_fetch_timeouts_total", "").value() == 0);
  CHECK(metrics.counter("revtrace_processor_skipped_total", "").value() == kBacklog);
  // One record: the payment's first revision already has the pageviews' touch.
  check_one_newsletter_record(out);
}

TEST_CASE("a web-events partition silent for 10 s no longer holds a payment back",
          "[event_time_stall]") {
  // The pageviews come in kWebSets message sets, and the mock broker answers a fetch with at most
  // one message set per partition. The first kFastFetches fetches of broker 2 answer at once and
  // deliver the first few sets (at most one each; 3 or 4 in runs here), the payer's campaign
  // pageview first; the next one answers after kStalledFetchMs. The web-events partition then
  // still has records to deliver, all written before the payment, and delivers nothing: after
  // 10 s of that silence the payment is processed. Without the rule it waits until the stalled
  // fetch answers and the partition delivered the rest.
  constexpr int kWebSets = 12;
  constexpr int kFastFetches = 4;
  constexpr int kStalledFetchMs = 20000;  // above the 10 s, below the first fetch's 30 s wait
  common::kafka::MockCluster broker(2);
  rd_kafka_mock_cluster_t* mock = broker.native();
  const std::string site = "stall-shop";
  const auto [config, web, stripe, revenue] = mock_deployment(broker, "event-time-stall", site);

  const std::int64_t t0 = 1790000000000;
  {
    common::kafka::Producer producer(config.kafka);
    for (int i = 0; i < kWebSets; ++i) {
      const std::int64_t at = t0 + i * 1000;
      const std::string value =
          i == 0 ? pageview(site, "v1", "pv0", at,
                            "https://stall-shop.example/?utm_source=newsletter&utm_medium=email")
                 : pageview(site, "v" + std::to_string(100 + i), "pv" + std::to_string(i), at,
                            "https://stall-shop.example/pricing");
      REQUIRE(produce_at(producer, web, site, value, at) == 0);
      REQUIRE(producer.flush(30s));  // one produce request, one message set
    }
    REQUIRE(produce_at(producer, stripe, site, checkout_completed(site, t0 / 1000 + 60),
                       t0 + 60500) == 0);
    REQUIRE(producer.flush(30s));
  }
  for (int i = 0; i < kFastFetches; ++i) {
    REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(mock, 2, kFetchApiKey, 1,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR, 0) == 0);
  }
  REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(mock, 2, kFetchApiKey, 1,
                                                       RD_KAFKA_RESP_ERR_NO_ERROR,
                                                       kStalledFetchMs) == 0);

  common::metrics::Registry metrics;
  processor::Processor processor(config, metrics);
  processor.start();
  const auto started = std::chrono::steady_clock::now();
  // The web-events position read right after the record was seen in the output: below the
  // partition's end means the payment was processed before the partition delivered the rest.
  std::int64_t web_position_at_output = -1;
  std::vector<TopicRecord> out;
  const bool output = wait_until(90s, [&] {
    out = read_topic(config.kafka.bootstrap, revenue);
    if (out.empty()) return false;
    web_position_at_output = position(processor, web);
    return true;
  }, 100ms);
  const auto output_after = std::chrono::steady_clock::now() - started;
  const bool all_processed = wait_until(60s, [&] {
    return position(processor, web) >= kWebSets && position(processor, stripe) >= 1 &&
           processor.records_processed() >= kWebSets + 1;
  }, 100ms);
  processor.stop();
  REQUIRE(processor.healthy());
  out = read_topic(config.kafka.bootstrap, revenue);
  INFO("attributed-revenue records:\n" << values_of(out));
  INFO("first output after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(output_after).count()
       << " ms, web-events position then " << web_position_at_output << " of " << kWebSets);
  REQUIRE(output);
  CHECK(web_position_at_output >= 1);  // the campaign pageview was delivered
  REQUIRE(web_position_at_output < kWebSets);
  REQUIRE(all_processed);
  // The payment waited for the web-events partition at first, and not for its first fetch.
  CHECK(metrics.counter("revtrace_processor_event_time_holds_total", "").value() > 0);
  CHECK(metrics.counter("revtrace_processor_first_fetch_timeouts_total", "").value() == 0);
  // One record, with the touch of the pageview delivered before the silence.
  check_one_newsletter_record(out);
}
