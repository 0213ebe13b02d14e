// Set-up command (1) in a test: `revtrace dev --demo` (embedded broker, RocksDB under a temporary
// directory) comes up and its query API answers with the demo's revenue, split by channel, with
// the demo's refund and renewals visible.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <csignal>
#include <filesystem>

#include "tests/support/test_support.hpp"

using namespace revtrace::testing;
using namespace std::chrono_literals;

TEST_CASE("dev --demo: the query API answers with the demo's revenue", "[dev]") {
  const std::string dir = temp_dir("revtrace-dev");
  const auto gw = free_port();
  const auto query = free_port();
  const auto metrics = free_port();
  ChildProcess dev({revtrace_binary(), "dev", "--demo", "--data-dir", dir + "/data", "--set",
                    "gateway.listen=127.0.0.1:" + std::to_string(gw), "--set",
                    "query.listen=127.0.0.1:" + std::to_string(query), "--set",
                    "processor.metrics_listen=127.0.0.1:" + std::to_string(metrics)},
                   {}, dir + "/dev.log");
  INFO("dev log:\n" << dev.log());
  REQUIRE(wait_for_http(query, "/healthz", 60s));
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer token-demo-shop"}};
  simdjson::dom::parser parser;
  // The URLs are printed once the demo is processed: the first answer after them is the whole
  // demo (the same as once nothing changes any more, below).
  REQUIRE(wait_until(120s, [&] { return dev.log().find("/v1/sites/demo-jp/revenue") != std::string::npos; },
                     100ms));
  CHECK(dev.log().find("revtrace dev: demo processed: ") != std::string::npos);
  // It says plainly that the embedded broker keeps nothing, and external Kafka clients reach it.
  const std::string log = dev.log();
  CHECK(log.find("the embedded broker keeps everything in memory; nothing survives a restart") !=
        std::string::npos);
  const std::string marker = "revtrace dev: embedded Kafka-protocol broker at ";
  const auto at = log.find(marker);
  REQUIRE(at != std::string::npos);
  const std::string bootstrap = log.substr(at + marker.size(), log.find('\n', at) - at - marker.size());
  ChildProcess kcat({"/usr/bin/kcat", "-b", bootstrap, "-L", "-t", "revtrace.attributed-revenue.v1"}, {},
                    dir + "/kcat.log");
  REQUIRE(kcat.wait(30s) == 0);
  CHECK(kcat.log().find("topic \"revtrace.attributed-revenue.v1\"") != std::string::npos);
  std::int64_t first_payments = -1;
  {
    const auto r = http_request(query, "GET", "/v1/sites/demo-shop/revenue?group_by=all", {}, auth);
    REQUIRE(r.status == 200);
    simdjson::dom::element doc = parser.parse(r.body);
    simdjson::dom::array rows = doc["rows"];
    if (rows.size() == 1) first_payments = rows.at(0)["payments"].get_int64();
  }
  // 187 payments of the demo; wait until the processor has attributed all of demo-shop's.
  std::int64_t revenue = 0;
  std::int64_t net = 0;
  std::int64_t payments = 0;
  std::int64_t previous = -1;
  const bool settled = wait_until(90s, [&] {
    const auto r = http_request(query, "GET", "/v1/sites/demo-shop/revenue?group_by=all", {}, auth);
    if (r.status != 200) return false;
    simdjson::dom::element doc = parser.parse(r.body);
    simdjson::dom::array rows = doc["rows"];
    if (rows.size() != 1) return false;
    revenue = rows.at(0)["revenue"].get_int64();
    net = rows.at(0)["net"].get_int64();
    payments = rows.at(0)["payments"].get_int64();
    const bool stable = payments > 0 && payments == previous;
    previous = payments;
    return stable;
  }, 1s);
  REQUIRE(settled);
  CHECK(first_payments == payments);
  CHECK(payments >= 40);
  CHECK(revenue > 0);
  CHECK(net < revenue);  // the demo refunds half of one payment
  const auto channels = http_request(
      query, "GET", "/v1/sites/demo-shop/revenue?model=last_touch&group_by=channel", {}, auth);
  REQUIRE(channels.status == 200);
  CHECK(channels.body.find("\"Email\"") != std::string::npos);
  CHECK(channels.body.find("\"Paid Search\"") != std::string::npos);
  const auto saas = http_request(query, "GET", "/v1/sites/demo-saas/revenue?group_by=method", {},
                                 {{"Authorization", "Bearer token-demo-saas"}});
  CHECK(saas.body.find("\"inherited\"") != std::string::npos);  // renewals
  // Another site's token reads nothing here.
  CHECK(http_request(query, "GET", "/v1/sites/demo-shop/revenue", {},
                     {{"Authorization", "Bearer token-demo-saas"}})
            .status == 403);
  dev.signal(SIGTERM);
  CHECK(dev.wait(60s) == 0);
  std::filesystem::remove_all(dir);
}
