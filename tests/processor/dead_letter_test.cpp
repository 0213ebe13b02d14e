// Dead letters on a real Kafka broker: records the engine rejects — invalid JSON, a required field
// missing, bytes that are not UTF-8, an unknown web event type, a Stripe object without its
// amount — on each input topic, mixed with valid ones, each become exactly one
// revtrace.dead-letter.v1 record (reason, source topic, partition, offset, key, original bytes or
// their base64, the record's timestamp) that the independent validator accepts against the
// schema; processing goes on (the valid payments are attributed), and Stripe event types revtrace
// does not use are skipped and counted, never dead-lettered.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/processor/processor_harness.hpp"
#include "tests/support/test_support.hpp"

using namespace revtrace::testing;
using namespace revtrace::testing::processor_harness;
using namespace std::chrono_literals;

namespace {

std::string escape_json(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string pageview(const std::string& site, const std::string& event_id,
                     const std::string& visitor, std::int64_t at, const std::string& query) {
  return R"({"event_id":")" + event_id + R"(","type":"pageview","site_id":")" + site +
         R"(","visitor_id":")" + visitor + R"(","occurred_at":)" + std::to_string(at) +
         R"(,"received_at":)" + std::to_string(at + 20) + R"(,"url":"https://)" + site +
         R"(.example/)" + query + R"(","device":{"browser":"Chrome","os":"macOS","device_class":"desktop"},"country":"DE"})";
}

std::string stripe_record(const std::string& site, const std::string& id, const std::string& type,
                          std::int64_t created_s, const std::string& object) {
  const std::string payload = R"({"id":")" + id +
                              R"(","object":"event","api_version":"2025-03-31.basil","created":)" +
                              std::to_string(created_s) + R"(,"livemode":true,"type":")" + type +
                              R"(","data":{"object":)" + object + "}}";
  return R"({"site_id":")" + site + R"(","source":"webhook","received_at":)" +
         std::to_string(created_s * 1000 + 500) + R"(,"event_id":")" + id +
         R"(","event_type":")" + type + R"(","livemode":true,"api_version":"2025-03-31.basil","created":)" +
         std::to_string(created_s) + R"(,"payload":")" + escape_json(payload) + "\"}";
}

std::string checkout_session(const std::string& cs, const std::string& amount_field,
                             const std::string& metadata, std::int64_t created_s) {
  return R"({"id":")" + cs + R"(","object":"checkout.session",)" + amount_field +
         R"("currency":"usd","payment_status":"paid","status":"complete","mode":"payment","livemode":true,"client_reference_id":null,"customer":null,"customer_details":{"email":null},"payment_intent":null,"payment_link":null,"metadata":{)" +
         metadata + R"(},"created":)" + std::to_string(created_s) + "}";
}

struct Input {
  std::string topic;  // contract name
  std::string value;
  std::string reason;  // expected dead-letter reason; empty = accepted or skipped
};

}  // namespace

TEST_CASE("dead letters: rejected records are set aside exactly and processing goes on",
          "[kafka][dead-letter]") {
  auto d = make_deployment(kafka_bootstrap(), "dead");
  const std::string site = unique("dl");
  const std::string v1 = site + "-v1";
  const std::string v2 = site + "-v2";
  const std::string cs_a = "cs_" + site + "_a";  // linked by a redirect
  const std::string cs_b = "cs_" + site + "_b";  // linked by metadata
  const std::int64_t t = 1790000000000;          // 2026-09-21
  const std::int64_t paid_s = t / 1000 + 600;

  // simdjson's messages (the reason is "<what>: invalid JSON: <message>").
  const std::string truncated = "The JSON document has an improper structure: missing or superfluous commas, braces, missing keys, etc.";
  const std::string not_utf8 = "The input is not valid UTF-8";
  const std::string not_an_atom = "Problem while parsing an atom starting with the letter 'n'";

  std::vector<Input> inputs = {
      // Web events: valid, broken, valid again after the broken ones.
      {kWebEvents, pageview(site, site + "-w1", v1, t, "?utm_source=newsletter&utm_medium=email&utm_campaign=spring"), ""},
      {kWebEvents, R"({"event_id":")" + site + R"(-w2","type":"pageview","site_id":)", "web event: invalid JSON: " + truncated},
      {kWebEvents, R"({"event_id":")" + site + R"(-w3","type":"pageview","site_id":")" + site +
                       R"(","received_at":)" + std::to_string(t) + R"(,"url":"https://x.example/"})",
       "web event: missing string field visitor_id"},
      {kWebEvents, R"({"event_id":")" + site + "-w4\xff\xfe" + R"(","type":"pageview","site_id":")" + site +
                       R"(","visitor_id":")" + v1 + R"(","received_at":)" + std::to_string(t) +
                       R"(,"url":"https://x.example/"})",
       "web event: invalid JSON: " + not_utf8},
      {kWebEvents, R"({"event_id":")" + site + R"(-w5","type":"scroll","site_id":")" + site +
                       R"(","visitor_id":")" + v1 + R"(","received_at":)" + std::to_string(t + 1000) + "}",
       "web event: unknown type scroll"},
      {kWebEvents, pageview(site, site + "-w6", v2, t + 5000, "?gclid=abc&utm_source=google&utm_medium=cpc&utm_campaign=brand"), ""},
      // Checkout redirects.
      {kRedirects, "not json at all", "checkout redirect: invalid JSON: " + not_an_atom},
      {kRedirects, R"({"event_id":")" + site + R"(-r2","type":"checkout_redirect","site_id":")" + site +
                       R"(","visitor_id":")" + v1 + R"(","url":"https://x.example/thanks","received_at":)" +
                       std::to_string(t + 60000) + "}",
       "checkout redirect: missing string field checkout_session_id"},
      {kRedirects, std::string("\xc3\x28\xa0\xa1 binary"), "checkout redirect: invalid JSON: " + not_utf8},
      {kRedirects, R"({"event_id":")" + site + R"(-r4","type":"checkout_redirect","site_id":")" + site +
                       R"(","visitor_id":")" + v1 + R"(","checkout_session_id":")" + cs_a +
                       R"(","url":"https://)" + site + R"(.example/thanks?session_id=)" + cs_a +
                       R"(","received_at":)" + std::to_string(t + 700000) + "}",
       ""},
      // Stripe events.
      {kStripeEvents, R"({"site_id":")" + site + R"(","event_id":)", "stripe event: invalid JSON: " + truncated},
      {kStripeEvents, R"({"site_id":")" + site + R"(","source":"webhook","received_at":)" + std::to_string(t) +
                          R"(,"event_id":"evt_x2","event_type":"charge.succeeded","livemode":true,"created":)" +
                          std::to_string(paid_s) + "}",
       "stripe event: missing string field payload"},
      {kStripeEvents, R"({"site_id":")" + site + R"(","event_id":"evt_)" + "\xe2\x28\xa1" + R"(","payload":"{}"})",
       "stripe event: invalid JSON: " + not_utf8},
      {kStripeEvents, stripe_record(site, "evt_unused1", "customer.created", paid_s - 100,
                                    R"({"id":"cus_1","object":"customer","email":null})"),
       ""},
      {kStripeEvents, stripe_record(site, "evt_cs_a", "checkout.session.completed", paid_s,
                                    checkout_session(cs_a, R"("amount_total":4900,)", "", paid_s)),
       ""},
      {kStripeEvents, stripe_record(site, "evt_unused2", "payment_method.attached", paid_s + 10,
                                    R"({"id":"pm_1","object":"payment_method"})"),
       ""},
      {kStripeEvents, stripe_record(site, "evt_cs_c", "checkout.session.completed", paid_s + 20,
                                    checkout_session("cs_" + site + "_c", "", "", paid_s + 20)),
       "checkout.session.completed: data.object: missing integer field amount_total"},
      {kStripeEvents, stripe_record(site, "evt_cs_b", "checkout.session.completed", paid_s + 30,
                                    checkout_session(cs_b, R"("amount_total":1500,)",
                                                     R"("revtrace_visitor_id":")" + v2 + "\"", paid_s + 30)),
       ""},
  };
  const std::size_t unused_types = 2;
  std::size_t rejected = 0;
  for (const auto& in : inputs) rejected += in.reason.empty() ? 0 : 1;

  std::map<std::string, std::vector<std::pair<std::string, std::string>>> by_topic;
  for (const auto& in : inputs) by_topic[d.topic(in.topic)].emplace_back(site, in.value);
  for (const auto& [topic, records] : by_topic) produce(d.bootstrap, topic, records);

  ProcessorInstance p(d, "dead");
  p.start();
  const bool idle = wait_idle({&p}, 120s);
  const auto m = p.metrics();
  const int exit = p.stop();
  INFO(p.log());
  REQUIRE(idle);
  REQUIRE(exit == 0);

  // Where each input landed (value -> record), to know the expected partition, offset, timestamp.
  std::map<std::string, LogRecord> placed;
  for (const char* t : {kWebEvents, kRedirects, kStripeEvents}) {
    for (auto& r : read_log(d.bootstrap, d.topic(t), Isolation::read_committed)) {
      placed[std::string(t) + "\n" + r.value.value_or("")] = r;
    }
  }
  REQUIRE(placed.size() == inputs.size());

  const auto letters = read_log(d.bootstrap, d.topic(kDeadLetter), Isolation::read_committed);
  std::map<std::string, simdjson::dom::element> by_source;  // "topic@partition/offset" -> record
  simdjson::dom::parser parser;
  std::vector<simdjson::dom::document> docs(letters.size());
  std::string ndjson;
  for (std::size_t i = 0; i < letters.size(); ++i) {
    const auto& l = letters[i];
    INFO("dead letter " << l.value.value_or("(null)"));
    REQUIRE(l.value);
    CHECK(l.key == site);  // the original record's key
    ndjson += *l.value + "\n";
    simdjson::dom::element e;
    REQUIRE(parser.parse_into_document(docs[i], *l.value).get(e) == simdjson::SUCCESS);
    const std::string where = std::string(e["source_topic"].get_string().value()) + "@" +
                              std::to_string(e["partition"].get_int64().value()) + "/" +
                              std::to_string(e["offset"].get_int64().value());
    CHECK(by_source.emplace(where, e).second);  // one dead letter per rejected record
  }
  CHECK(letters.size() == rejected);

  for (const auto& in : inputs) {
    const auto& r = placed.at(std::string(in.topic) + "\n" + in.value);
    const std::string where = d.topic(in.topic) + "@" + std::to_string(r.partition) + "/" +
                              std::to_string(r.offset);
    INFO(in.topic << " " << in.value << " at " << where);
    auto it = by_source.find(where);
    if (in.reason.empty()) {
      CHECK(it == by_source.end());  // accepted or skipped: never dead-lettered
      continue;
    }
    REQUIRE(it != by_source.end());
    const auto e = it->second;
    const bool utf8 = simdjson::validate_utf8(in.value.data(), in.value.size());
    CHECK(std::string(e["reason"].get_string().value()) == in.reason);
    CHECK(std::string(e["source_topic"].get_string().value()) == d.topic(in.topic));
    CHECK(e["partition"].get_int64().value() == r.partition);
    CHECK(e["offset"].get_int64().value() == r.offset);
    CHECK(std::string(e["key"].get_string().value()) == site);
    CHECK(std::string(e["original"].get_string().value()) == (utf8 ? in.value : base64(in.value)));
    CHECK(std::string(e["original_encoding"].get_string().value()) == (utf8 ? "utf8" : "base64"));
    CHECK(e["record_timestamp"].get_int64().value() == r.timestamp);
    CHECK(e.get_object().value().size() == 8);  // exactly the fields of the schema
  }

  // The independent validator (ajv, schemas/revtrace.dead-letter.v1.schema.json).
  const std::string source_dir = std::getenv("REVTRACE_SOURCE_DIR");
  const std::string file = d.dir + "/dead-letters.ndjson";
  std::ofstream(file) << ndjson;
  const std::string cmd = "node " + source_dir + "/tests/js/validate-records.mjs " + source_dir +
                          "/schemas " + kDeadLetter + " " + file + " > " + file + ".out 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream verdict_file(file + ".out");
  const std::string verdict((std::istreambuf_iterator<char>(verdict_file)), std::istreambuf_iterator<char>());
  INFO("validator: " << verdict);
  CHECK(rc == 0);
  CHECK(verdict == std::to_string(rejected) + " records valid\n");

  // Processing went on: both valid payments are attributed, each by its own evidence.
  const auto revenue = analyse_revenue(read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed));
  CHECK(revenue.repeated.empty());
  CHECK(revenue.not_growing.empty());
  REQUIRE(revenue.latest.size() == 2);
  std::map<std::string, std::string> method_of_session;
  for (const auto& [key, value] : revenue.latest) {
    INFO(key << ": " << value);
    simdjson::dom::element rec = parser.parse(value);
    const std::string cs(rec["stripe"]["checkout_session"].get_string().value());
    CHECK(key == site + "/" + std::string(rec["payment_key"].get_string().value()));
    CHECK(std::string(rec["site_id"].get_string().value()) == site);
    method_of_session[cs] = std::string(rec["method"].get_string().value());
    simdjson::dom::array visitors = rec["visitor_ids"];
    REQUIRE(visitors.size() == 1);
    simdjson::dom::array touches = rec["touches"];
    REQUIRE(touches.size() == 1);
    if (cs == cs_a) {
      CHECK(rec["amount"].get_int64().value() == 4900);
      CHECK(std::string(visitors.at(0).get_string().value()) == v1);
      CHECK(std::string(touches.at(0)["source"].get_string().value()) == "newsletter");
    } else {
      CHECK(cs == cs_b);
      CHECK(rec["amount"].get_int64().value() == 1500);
      CHECK(std::string(visitors.at(0).get_string().value()) == v2);
      CHECK(std::string(touches.at(0)["source"].get_string().value()) == "google");
    }
  }
  CHECK(method_of_session == std::map<std::string, std::string>{{cs_a, "checkout_redirect"},
                                                                {cs_b, "metadata"}});

  // Every input was processed; the rejected ones were dead-lettered, the unused Stripe types
  // skipped and counted.
  CHECK(m.records() == inputs.size());
  CHECK(m.value("revtrace_processor_dead_letters_total") == static_cast<double>(rejected));
  CHECK(m.value("revtrace_processor_skipped_total") == static_cast<double>(unused_types));
  CHECK(m.value("revtrace_processor_skipped_by_cause_total{cause=\"unused_type\"}") ==
        static_cast<double>(unused_types));
  CHECK(m.value("revtrace_processor_skipped_by_cause_total{cause=\"duplicate\"}") == 0.0);
  CHECK(m.revenue() == revenue.records);
}
