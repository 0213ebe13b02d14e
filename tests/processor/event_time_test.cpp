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

}  // namespace

TEST_CASE("a backlog's payments wait for the pageviews written before them: one attributed "
          "revision each",
          "[kafka][event-time]") {
  auto d = make_deployment(kafka_bootstrap(), "event-time");
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
    for (int k = 0; k < kFillerPerPayer; ++k) {
      web.emplace_back(site, pageview(site, n + "-f" + std::to_string(k), n + "-other-" + std::to_string(k),
                                      at + 1000 + k, "pricing"));
    }
    produce(d.bootstrap, d.topic(kWebEvents), web);
    produce(d.bootstrap, d.topic(kStripeEvents), {{site, payment(site, n, "payer-" + n, at / 1000 + 1800)}});
  }

  ProcessorInstance p(d, "event-time");
  p.start();
  const bool idle = wait_idle({&p}, 180s);
  const auto m = p.metrics();
  REQUIRE(p.stop() == 0);
  INFO(p.log());
  REQUIRE(idle);
  CHECK(m.records() == static_cast<std::uint64_t>(kPayers * (kFillerPerPayer + 2)));
  // Payments did wait: the web partition was still being fetched when they came.
  CHECK(m.value("revtrace_processor_event_time_holds_total") > 0);

  const auto revenue = read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed);
  const auto history = analyse_revenue(revenue);
  CHECK(history.latest.size() == static_cast<std::size_t>(kPayers));
  // One record per payment: none was emitted before its pageview and revised after.
  CHECK(revenue.size() == history.latest.size());
  simdjson::dom::parser parser;
  for (const auto& r : revenue) {
    REQUIRE(r.value);
    INFO(*r.value);
    simdjson::dom::element rec = parser.parse(*r.value);
    simdjson::dom::array touches = rec["touches"];
    REQUIRE(touches.size() == 1);
    CHECK(std::string_view(touches.at(0)["source"]) == "newsletter");
  }
}
