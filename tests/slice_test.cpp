// The first slice, end to end on a real Kafka broker: two pageviews of one visitor (the first from a
// newsletter campaign), then a signed checkout.session.completed webhook naming that visitor in
// its metadata. The processor must emit exactly one attributed-revenue record crediting 4900 usd
// to the newsletter touch under first_touch, and the query API must report newsletter: 4900.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "tests/support/test_support.hpp"

using namespace revtrace::testing;
using namespace std::chrono_literals;

namespace {

std::string write_config(const std::string& dir, const std::string& site, const std::string& prefix,
                         std::uint16_t gw_port, std::uint16_t query_port,
                         std::uint16_t metrics_port) {
  const std::string path = dir + "/revtrace.toml";
  std::ofstream out(path);
  out << "log_level = \"info\"\n"
      << "[kafka]\nbootstrap = \"" << kafka_bootstrap() << "\"\npartitions = 6\n"
      << "topic_prefix = \"" << prefix << "\"\n"
      << "[gateway]\nlisten = \"127.0.0.1:" << gw_port << "\"\nthreads = 2\n"
      << "[processor]\ndata_dir = \"" << dir << "/processor\"\ngroup_id = \"" << unique("proc")
      << "\"\nmetrics_listen = \"127.0.0.1:" << metrics_port << "\"\n"
      << "[query]\nlisten = \"127.0.0.1:" << query_port << "\"\ndata_dir = \"" << dir
      << "/query\"\ngroup_id = \"" << unique("query") << "\"\n"
      << "[[sites]]\nid = \"" << site << "\"\nwebhook_secrets = [\"whsec_slice\"]\n"
      << "allowed_origins = [\"*\"]\nquery_tokens = [\"token-" << site << "\"]\n";
  return path;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("slice: pageviews + signed checkout webhook -> first_touch credit and query answer",
          "[kafka][slice]") {
  const std::string bootstrap = kafka_bootstrap();
  const std::string dir = temp_dir("revtrace-slice");
  const std::string site = unique("slice");
  const std::string visitor = unique("v");
  const auto gw_port = free_port();
  const auto query_port = free_port();
  const auto metrics_port = free_port();
  // Every test has its own topics (kafka.topic_prefix), created by revtrace itself.
  const std::string prefix = unique("slice") + ".";
  const std::string config = write_config(dir, site, prefix, gw_port, query_port, metrics_port);
  const std::string bin = revtrace_binary();
  {
    ChildProcess create({bin, "topics", "create", "--config", config}, {}, dir + "/topics.log");
    const int status = create.wait(60s).value_or(-1);
    INFO("revtrace topics create: " << create.log());
    REQUIRE(status == 0);
  }

  ChildProcess gateway({bin, "gateway", "--config", config}, {}, dir + "/gateway.log");
  ChildProcess processor({bin, "processor", "--config", config}, {}, dir + "/processor.log");
  ChildProcess query({bin, "query", "--config", config}, {}, dir + "/query.log");
  INFO("logs in " << dir);
  REQUIRE(wait_for_http(gw_port, "/healthz", 30s));
  REQUIRE(wait_for_http(query_port, "/healthz", 30s));

  const std::int64_t t0 = now_ms() - 60'000;
  const std::string pv1 = R"({"type":"pageview","site_id":")" + site + R"(","visitor_id":")" +
                          visitor + R"(","session_id":"s1","occurred_at":)" + std::to_string(t0) +
                          R"(,"url":"https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring","referrer":"","title":"Home"})";
  const std::string pv2 = R"({"type":"pageview","site_id":")" + site + R"(","visitor_id":")" +
                          visitor + R"(","session_id":"s1","occurred_at":)" +
                          std::to_string(t0 + 5000) +
                          R"(,"url":"https://shop.example/pricing","referrer":"https://shop.example/"})";
  for (const auto& body : {pv1, pv2}) {
    const auto r = http_request(gw_port, "POST", "/v1/events", body,
                                {{"Content-Type", "application/json"}});
    REQUIRE(r.status == 202);
  }

  // The pageviews came before the payment: wait until both are durably in their topic.
  REQUIRE(wait_until(30s, [&] {
    std::size_t n = 0;
    for (auto& r : read_topic(bootstrap, prefix + "revtrace.web-events.v1")) n += r.key == site;
    return n == 2;
  }));

  const std::int64_t created = (t0 + 30'000) / 1000;
  const std::string payload =
      R"({"id":"evt_slice_1","object":"event","api_version":"2025-03-31.basil","created":)" +
      std::to_string(created) +
      R"(,"livemode":false,"type":"checkout.session.completed","data":{"object":{"id":"cs_test_slice1","object":"checkout.session","amount_total":4900,"currency":"usd","payment_status":"paid","status":"complete","mode":"payment","client_reference_id":null,"customer":null,"customer_details":{"email":"buyer@example.com"},"payment_intent":"pi_slice1","payment_link":null,"metadata":{"revtrace_visitor_id":")" +
      visitor + R"("},"created":)" + std::to_string(created) + "}}}";
  const auto signature = stripe_signature(payload, "whsec_slice", now_ms() / 1000);
  const auto hook = http_request(gw_port, "POST", "/v1/webhooks/stripe/" + site, payload,
                                 {{"Content-Type", "application/json"},
                                  {"Stripe-Signature", signature}});
  INFO("webhook answer: " << hook.body);
  REQUIRE(hook.status == 200);

  // The query API answers with the newsletter's credit once the record went through.
  const std::string target =
      "/v1/sites/" + site + "/revenue?model=first_touch&group_by=source&livemode=false";
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer token-" + site}};
  HttpResult answer;
  const bool seen = wait_until(60s, [&] {
    answer = http_request(query_port, "GET", target, {}, auth);
    return answer.status == 200 && answer.body.find("newsletter") != std::string::npos;
  }, 200ms);
  INFO("query answer: " << answer.status << " " << answer.body << "\nprocessor log:\n"
                        << processor.log() << "\nquery log:\n" << query.log());
  REQUIRE(seen);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(answer.body);
  simdjson::dom::array rows = doc["rows"];
  REQUIRE(rows.size() == 1);
  CHECK(std::string_view(rows.at(0)["key"]) == "newsletter");
  CHECK(std::string_view(rows.at(0)["currency"]) == "usd");
  CHECK(int64_t(rows.at(0)["revenue"]) == 4900);
  CHECK(int64_t(rows.at(0)["payments"]) == 1);

  // Without the site's token the same route is refused.
  CHECK(http_request(query_port, "GET", target).status == 401);

  // Exactly one attributed-revenue record for the site, with the exact credit.
  std::vector<TopicRecord> mine;
  for (auto& r : read_topic(bootstrap, prefix + "revtrace.attributed-revenue.v1")) {
    if (r.key.starts_with(site + "/")) mine.push_back(r);
  }
  REQUIRE(mine.size() == 1);
  simdjson::dom::element rec = parser.parse(mine[0].value);
  CHECK(std::string_view(rec["site_id"]) == site);
  CHECK(int64_t(rec["amount"]) == 4900);
  CHECK(std::string_view(rec["currency"]) == "usd");
  CHECK(int64_t(rec["net"]) == 4900);
  // The revision is the size of the payment's basis (processor/domain/ENGINE.md, "Revisions"):
  // one Stripe observation, one visitor, one session (both pageviews are one visit).
  CHECK(int64_t(rec["revision"]) == 3);
  CHECK(std::string_view(rec["method"]) == "metadata");
  simdjson::dom::array touches = rec["touches"];
  REQUIRE(touches.size() >= 1);
  CHECK(std::string_view(touches.at(0)["source"]) == "newsletter");
  CHECK(std::string_view(touches.at(0)["medium"]) == "email");
  CHECK(std::string_view(touches.at(0)["campaign"]) == "spring");
  simdjson::dom::array first = rec["credits"]["first_touch"];
  REQUIRE(first.size() == touches.size());
  CHECK(int64_t(first.at(0)) == 4900);

  // The records revtrace produced conform to the published schemas (independent validator).
  const std::string source_dir = std::getenv("REVTRACE_SOURCE_DIR");
  auto validate = [&](const std::string& topic, const std::vector<std::string>& values) {
    const std::string file = dir + "/" + topic + ".ndjson";
    std::ofstream out(file);
    for (const auto& v : values) out << v << "\n";
    out.close();
    const std::string cmd = "node " + source_dir + "/tests/js/validate-records.mjs " + source_dir +
                            "/schemas " + topic + " " + file + " > " + file + ".out 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream result(file + ".out");
    std::string text((std::istreambuf_iterator<char>(result)), std::istreambuf_iterator<char>());
    INFO(topic << ": " << text);
    CHECK(rc == 0);
  };
  validate("revtrace.attributed-revenue.v1", {mine[0].value});
  auto values_of_site = [&](const std::string& topic) {
    std::vector<std::string> values;
    for (auto& r : read_topic(bootstrap, prefix + topic)) {
      if (r.value.find("\"site_id\":\"" + site + "\"") != std::string::npos) values.push_back(r.value);
    }
    return values;
  };
  const auto web = values_of_site("revtrace.web-events.v1");
  CHECK(web.size() == 2);
  validate("revtrace.web-events.v1", web);
  const auto stripe = values_of_site("revtrace.stripe-events.v1");
  CHECK(stripe.size() == 1);
  validate("revtrace.stripe-events.v1", stripe);

  for (auto* p : {&gateway, &processor, &query}) p->signal(SIGTERM);
  CHECK(gateway.wait(30s) == 0);
  CHECK(processor.wait(30s) == 0);
  CHECK(query.wait(30s) == 0);
  std::filesystem::remove_all(dir);
}
