// Kafka orders records within a partition, not across topics. After an assignment each input
// partition starts fetching on its own, so a payment's Stripe event can be fetched seconds before
// the pageviews written before it. The processor holds a partition number's records until each of
// its input partitions was fetched once; without that, it emits an unattributed revision first and
// then revises it.
//
// The delay is injected with librdkafka's mock cluster (fault injection, not exactly-once: the
// outcome checked is the order of processing). The web-events partitions are led by broker 2, whose
// first fetch responses are delayed by three seconds; everything else lives on broker 1.
#include <catch2/catch.hpp>
#include <simdjson.h>

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

std::string pageview(const std::string& site, const std::string& id, std::int64_t at,
                     const std::string& url) {
  return R"({"event_id":")" + id + R"(","type":"pageview","site_id":")" + site +
         R"(","visitor_id":"v1","occurred_at":)" + std::to_string(at) + R"(,"received_at":)" +
         std::to_string(at + 20) + R"(,"url":")" + url + R"("})";
}

std::string checkout_completed(const std::string& site, std::int64_t paid_s) {
  const std::string session =
      R"({"id":"cs_order1","object":"checkout.session","amount_total":4900,"currency":"usd","payment_status":"paid","status":"complete","mode":"payment","livemode":true,"client_reference_id":null,"customer":null,"customer_details":{"email":"buyer@example.com"},"payment_intent":"pi_order1","payment_link":null,"metadata":{"revtrace_visitor_id":"v1"},"created":)" +
      std::to_string(paid_s) + "}";
  return stripe_envelope(site, "evt_order1", "checkout.session.completed", paid_s, session,
                         paid_s * 1000 + 500);
}

}  // namespace

TEST_CASE("a payment fetched before its pageviews waits for them: one attributed revision",
          "[fetch_order]") {
  common::kafka::MockCluster broker(2);
  rd_kafka_mock_cluster_t* mock = broker.native();
  const std::string dir = temp_dir("revtrace-fetch-order");
  common::Config config;
  config.kafka.bootstrap = broker.bootstrap();
  config.kafka.replication_factor = 1;
  config.processor.data_dir = dir + "/processor";
  config.processor.group_id = "fetch-order";
  config.processor.metrics_listen = "127.0.0.1:0";
  config.processor.threads = 1;
  std::filesystem::create_directories(config.processor.data_dir);
  const std::string site = "order-shop";
  common::SiteConfig site_config;
  site_config.id = site;
  config.sites.push_back(site_config);

  const std::string web = common::topics::name(config.kafka, common::topics::kWebEvents);
  const std::string stripe = common::topics::name(config.kafka, common::topics::kStripeEvents);
  const std::string revenue = common::topics::name(config.kafka, common::topics::kAttributedRevenue);
  for (const auto& spec : common::kafka::revtrace_topics(config.kafka)) {
    broker.create_topic(spec.name, spec.partitions);
    for (int p = 0; p < spec.partitions; ++p) {
      REQUIRE(rd_kafka_mock_partition_set_leader(mock, spec.name.c_str(), p,
                                                 spec.name == web ? 2 : 1) == 0);
    }
  }
  REQUIRE(rd_kafka_mock_coordinator_set(mock, "group", config.processor.group_id.c_str(), 1) == 0);

  // The pageviews are written first, the payment after them.
  const std::int64_t t0 = 1790000000000;
  {
    common::kafka::Producer producer(config.kafka);
    REQUIRE(producer.produce(web, site, pageview(site, "pv1", t0,
                                                 "https://order-shop.example/?utm_source=newsletter&utm_medium=email")) == 0);
    REQUIRE(producer.produce(web, site, pageview(site, "pv2", t0 + 5000,
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
  std::string values;
  for (const auto& r : out) values += r.value + "\n";
  INFO("attributed-revenue records:\n" << values);
  REQUIRE(attributed);
  REQUIRE(all_processed);
  // The wait ended because the pageviews came, not because it gave up on them.
  CHECK(metrics.counter("revtrace_processor_first_fetch_timeouts_total", "").value() == 0);
  CHECK(metrics.counter("revtrace_processor_skipped_total", "").value() == kBacklog);
  // One record: the payment's first revision already has the pageviews' touch.
  REQUIRE(out.size() == 1);
  simdjson::dom::parser parser;
  simdjson::dom::element rec = parser.parse(out[0].value);
  CHECK(std::string_view(rec["payment_key"]) == "pi_order1");
  CHECK(int64_t(rec["amount"]) == 4900);
  simdjson::dom::array touches = rec["touches"];
  REQUIRE(touches.size() == 1);
  CHECK(std::string_view(touches.at(0)["source"]) == "newsletter");
}
