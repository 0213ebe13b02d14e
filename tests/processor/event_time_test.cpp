// Event-time alignment on a real Kafka broker. Kafka orders records within a partition, not across
// topics, and fetches each partition on its own: with a backlog, the small Stripe topic is
// delivered long before the large web-events topic has caught up with it. A payment computed
// then has not seen the pageviews written before it, and is emitted unattributed and revised once
// they come. The processor lets a Stripe record wait while the web partition of its number still
// has records to deliver and has not delivered up to the Stripe record's timestamp.
//
// The backlog: payers, each with a campaign pageview, a stretch of other visitors' pageviews
// (about 1 MB of web events per payer, so the web partition takes a fetch per payer) and then the
// payer's payment. In log order each payment follows its pageview, so every payment must come out
// once, already attributed to the campaign.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/processor/processor_harness.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/workload.hpp"

using namespace revtrace::testing;
using namespace revtrace::testing::processor_harness;
using namespace std::chrono_literals;

namespace {

constexpr int kPayers = 12;
constexpr int kFillerPerPayer = 8000;  // about 2.7 MB of pageviews of other visitors

std::string pageview(const std::string& site, const std::string& id, const std::string& visitor,
                     std::int64_t at, const std::string& query) {
  return R"({"event_id":")" + id + R"(","type":"pageview","site_id":")" + site +
         R"(","visitor_id":")" + visitor + R"(","occurred_at":)" + std::to_string(at) +
         R"(,"received_at":)" + std::to_string(at + 20) + R"(,"url":"https://)" + site +
         R"(.example/)" + query + R"(","device":{"browser":"Chrome","os":"macOS","device_class":"desktop"},"country":"DE"})";
}

std::string payment(const std::string& site, const std::string& n, const std::string& visitor,
                    std::int64_t paid_s) {
  const std::string session =
      R"({"id":"cs_)" + n + R"(","object":"checkout.session","amount_total":4900,"currency":"usd","payment_status":"paid","status":"complete","mode":"payment","livemode":true,"client_reference_id":null,"customer":null,"customer_details":{"email":null},"payment_intent":"pi_)" +
      n + R"(","payment_link":null,"metadata":{"revtrace_visitor_id":")" + visitor +
      R"("},"created":)" + std::to_string(paid_s) + "}";
  return stripe_envelope(site, "evt_" + n, "checkout.session.completed", paid_s, session,
                         paid_s * 1000 + 500);
}

// The backlog below, processed by one processor with `env` (REVTRACE_* overrides): its metrics at
// the end and the attributed-revenue records it wrote.
struct Run {
  Metrics metrics;
  std::vector<LogRecord> revenue;
};

Run run_backlog(const std::string& tag, const std::map<std::string, std::string>& env,
                int filler_per_payer = kFillerPerPayer) {
  auto d = make_deployment(kafka_bootstrap(), tag);
  const std::string site = unique("et");
  const std::int64_t t0 = 1790000000000;  // 2026-09-21
  // Written payer by payer: the web records, then the payment (each call waits for the broker's
  // acknowledgement, so the Kafka timestamps follow this order).
  for (int i = 0; i < kPayers; ++i) {
    const std::string n = site + "_" + std::to_string(i);
    const std::int64_t at = t0 + i * 3600000LL;
    std::vector<std::pair<std::string, std::string>> web;
    web.emplace_back(site, pageview(site, n + "-campaign", "payer-" + n, at,
                                    "?utm_source=newsletter&utm_medium=email&utm_campaign=c" +
                                        std::to_string(i)));
    for (int k = 0; k < filler_per_payer; ++k) {
      web.emplace_back(site, pageview(site, n + "-f" + std::to_string(k), n + "-other-" + std::to_string(k),
                                      at + 1000 + k, "pricing"));
    }
    produce(d.bootstrap, d.topic(kWebEvents), web);
    produce(d.bootstrap, d.topic(kStripeEvents), {{site, payment(site, n, "payer-" + n, at / 1000 + 1800)}});
  }

  ProcessorInstance p(d, tag);
  for (const auto& [k, v] : env) p.env[k] = v;
  p.start();
  const bool idle = wait_idle({&p}, 180s);
  Run run{p.metrics(), {}};
  REQUIRE(p.stop() == 0);
  INFO(p.log());
  REQUIRE(idle);
  CHECK(run.metrics.records() == static_cast<std::uint64_t>(kPayers * (filler_per_payer + 2)));
  run.revenue = read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed);
  return run;
}

// The number of touches of a revenue record, and the source of its first.
std::pair<std::size_t, std::string> touches_of(const std::string& value) {
  simdjson::dom::parser parser;
  simdjson::dom::element rec = parser.parse(value);
  simdjson::dom::array touches = rec["touches"];
  if (touches.size() == 0) return {0, ""};
  return {touches.size(), std::string(std::string_view(touches.at(0)["source"]))};
}

// A run whose payments were computed ahead of their pageviews: more records than payments, some
// of them unattributed, and still every payment's latest record attributed to the campaign.
void check_revised_after_unattributed(const Run& run) {
  const auto history = analyse_revenue(run.revenue);
  CHECK(history.latest.size() == static_cast<std::size_t>(kPayers));
  CHECK(run.revenue.size() > history.latest.size());
  std::size_t unattributed = 0;
  for (const auto& r : run.revenue) {
    REQUIRE(r.value);
    if (touches_of(*r.value).first == 0) ++unattributed;
  }
  CHECK(unattributed > 0);
  for (const auto& [key, value] : history.latest) {
    INFO(value);
    CHECK(touches_of(value) == std::make_pair(std::size_t{1}, std::string("newsletter")));
  }
}

}  // namespace

TEST_CASE("a backlog's payments wait for the pageviews written before them: one attributed "
          "revision each",
          "[kafka][event-time]") {
  const auto run = run_backlog("event-time", {});
  // Payments did wait: the web partition was still being fetched when they came.
  CHECK(run.metrics.value("revtrace_processor_event_time_holds_total") > 0);
  const auto history = analyse_revenue(run.revenue);
  CHECK(history.latest.size() == static_cast<std::size_t>(kPayers));
  // One record per payment: none was emitted before its pageview and revised after.
  CHECK(run.revenue.size() == history.latest.size());
  for (const auto& r : run.revenue) {
    REQUIRE(r.value);
    INFO(*r.value);
    CHECK(touches_of(*r.value) == std::make_pair(std::size_t{1}, std::string("newsletter")));
  }
}

// The same backlog with the alignment off (processor.event_time_max_waiting = 0): the payments
// are computed as the Stripe partition delivers them, ahead of their pageviews, so some come out
// unattributed first and are revised; the final records are the same. This is what the case above
// would see without the alignment.
TEST_CASE("with the alignment off, the backlog's payments come out unattributed first",
          "[kafka][event-time]") {
  const auto run = run_backlog("event-time-off", {{"REVTRACE_PROCESSOR_EVENT_TIME_MAX_WAITING", "0"}});
  CHECK(run.metrics.value("revtrace_processor_event_time_holds_total") == 0);
  check_revised_after_unattributed(run);
}

// A partition's records wait at most processor.event_time_max_wait_ms; with 0, one batch. Behind
// 30,000 pageviews per payer (360,000 in all, batches of at most 50,000 new records), the later
// payments are let go long before the web partition reaches their pageviews: they did wait, and
// still come out unattributed first.
TEST_CASE("records wait at most processor.event_time_max_wait_ms", "[kafka][event-time]") {
  const auto run = run_backlog("event-time-wait", {{"REVTRACE_PROCESSOR_EVENT_TIME_MAX_WAIT_MS", "0"}},
                               30000);
  CHECK(run.metrics.value("revtrace_processor_event_time_holds_total") > 0);
  check_revised_after_unattributed(run);
}
