// POST /v1/events bodies → exact topic records, and every kind of bad body → the status and a
// message naming the problem.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <string>

#include "ingest/event_parser.hpp"

using namespace revtrace::ingest;

namespace {

RequestContext ctx() {
  RequestContext c;
  c.received_at = 1'700'000'000'123;
  c.device = {"Chrome", "macOS", "desktop"};
  c.country = "DE";
  return c;
}

bool known(std::string_view s) { return s == "shop" || s == "blog"; }

EventParse parse(std::string_view body, std::size_t max_batch = 100) {
  return parse_events(body, ctx(), max_batch, known);
}

}  // namespace

TEST_CASE("events: a full pageview becomes the documented record", "[events]") {
  const auto p = parse(
      R"({"type":"pageview","site_id":"shop","visitor_id":"v1","session_id":"s1","event_id":"e1",)"
      R"("occurred_at":1699999999000,"url":"https://shop.example/?utm_source=x","referrer":"https://g.example/",)"
      R"("title":"Home \"1\"","screen":"390x844","language":"en-US","timezone":"Europe/Berlin","unknown":1})");
  REQUIRE(p.status == 202);
  REQUIRE(p.records.size() == 1);
  CHECK(p.records[0].site_id == "shop");
  CHECK(p.records[0].topic == EventTopic::web_events);
  CHECK(p.records[0].value ==
        R"({"event_id":"e1","type":"pageview","site_id":"shop","visitor_id":"v1","session_id":"s1",)"
        R"("occurred_at":1699999999000,"received_at":1700000000123,"url":"https://shop.example/?utm_source=x",)"
        R"("referrer":"https://g.example/","title":"Home \"1\"","device":{"browser":"Chrome","os":"macOS",)"
        R"("device_class":"desktop"},"country":"DE","screen":"390x844","language":"en-US","timezone":"Europe/Berlin"})");
}

TEST_CASE("events: identify, custom, checkout_redirect and batches", "[events]") {
  const auto p = parse(
      R"([{"type":"identify","site_id":"shop","visitor_id":"v1","event_id":"a","email":"A@x.io","traits":{"plan": "pro"}},)"
      R"({"type":"custom","site_id":"blog","visitor_id":"v2","event_id":"b","name":"signup","props":{"n":[1, 2]}},)"
      R"({"type":"checkout_redirect","site_id":"shop","visitor_id":"v1","event_id":"c","url":"https://shop.example/buy",)"
      R"("checkout_session_id":"cs_test_123","title":"dropped"}])");
  REQUIRE(p.status == 202);
  REQUIRE(p.records.size() == 3);
  CHECK(p.records[0].value ==
        R"({"event_id":"a","type":"identify","site_id":"shop","visitor_id":"v1","received_at":1700000000123,)"
        R"("device":{"browser":"Chrome","os":"macOS","device_class":"desktop"},"country":"DE","email":"A@x.io","traits":{"plan":"pro"}})");
  CHECK(p.records[1].site_id == "blog");
  CHECK(p.records[1].value ==
        R"({"event_id":"b","type":"custom","site_id":"blog","visitor_id":"v2","received_at":1700000000123,)"
        R"("device":{"browser":"Chrome","os":"macOS","device_class":"desktop"},"country":"DE","name":"signup","props":{"n":[1,2]}})");
  CHECK(p.records[2].topic == EventTopic::checkout_redirects);
  CHECK(p.records[2].value ==
        R"({"event_id":"c","type":"checkout_redirect","site_id":"shop","visitor_id":"v1","received_at":1700000000123,)"
        R"("checkout_session_id":"cs_test_123","url":"https://shop.example/buy"})");
}

TEST_CASE("events: a generated event id is a time-ordered ULID", "[events]") {
  const auto p = parse(R"({"type":"pageview","site_id":"shop","visitor_id":"v","url":"https://a.example/"})");
  REQUIRE(p.status == 202);
  simdjson::dom::parser parser;
  const std::string_view id = parser.parse(p.records[0].value)["event_id"].get_string().value();
  CHECK(id.size() == 26);
  CHECK(new_event_id(1) < new_event_id(2));
  CHECK(new_event_id(5) != new_event_id(5));
}

TEST_CASE("events: bad bodies are refused with the problem named", "[events]") {
  struct Case {
    std::string body;
    int status;
    std::string message;  // a substring of the error
  };
  const std::string pv = R"("type":"pageview","site_id":"shop","visitor_id":"v","url":"https://a.example/")";
  std::string deep(40, '[');
  deep += std::string(40, ']');
  const std::vector<Case> cases{
      {"", 400, "empty"},
      {"{", 400, "not valid JSON"},
      {"{\"type\":\"pageview\",}", 400, "not valid JSON"},
      {"{\"type\":\"page\xff\"}", 400, "not valid UTF-8"},
      {"{\"a\":" + deep + "}", 400, "nested deeper than 16"},
      {"42", 400, "an event object or an array"},
      {"[]", 400, "batch is empty"},
      {"[1]", 400, "events[0] must be an object"},
      {"[{" + pv + "},{" + pv + "},{" + pv + "}]", 413, "at most 2 events"},
      {R"({"site_id":"shop","visitor_id":"v"})", 400, "event.type is required"},
      {R"({"type":7,"site_id":"shop","visitor_id":"v"})", 400, "event.type must be a string"},
      {R"({"type":"purchase","site_id":"shop","visitor_id":"v"})", 400, "event.type must be one of"},
      {R"({"type":"pageview","visitor_id":"v","url":"https://a.example/"})", 400, "event.site_id is required"},
      {R"({"type":"pageview","site_id":"sh op","visitor_id":"v","url":"https://a.example/"})", 400, "may only contain"},
      {R"({"type":"pageview","site_id":"nope","visitor_id":"v","url":"https://a.example/"})", 404, "'nope' is not a configured site"},
      {R"({"type":"pageview","site_id":"shop","url":"https://a.example/"})", 400, "event.visitor_id is required"},
      {R"({"type":"pageview","site_id":"shop","visitor_id":"v"})", 400, "event.url is required for pageview"},
      {R"({"type":"pageview","site_id":"shop","visitor_id":"v","url":"ftp://a"})", 400, "absolute http(s) URL"},
      {R"({"type":"identify","site_id":"shop","visitor_id":"v"})", 400, "event.email is required"},
      {R"({"type":"custom","site_id":"shop","visitor_id":"v"})", 400, "event.name is required"},
      {R"({"type":"checkout_redirect","site_id":"shop","visitor_id":"v","url":"https://a.example/","checkout_session_id":"pi_1"})", 400, "checkout_session_id must be"},
      {"{" + pv + R"(,"occurred_at":"yesterday"})", 400, "event.occurred_at must be an integer"},
      {"{" + pv + R"(,"occurred_at":-5})", 400, "occurred_at must be positive"},
      {"{" + pv + R"(,"traits":[1]})", 400, "event.traits must be an object"},
      {"{" + pv + R"(,"title":")" + std::string(5000, 'x') + "\"}", 400, "event.title is longer than 4096"},
      {"[{" + pv + R"(},{"type":"pageview","site_id":"shop","url":"https://a.example/"}])", 400, "events[1].visitor_id is required"},
  };
  for (const auto& c : cases) {
    INFO("body: " << c.body.substr(0, 200));
    const auto p = parse(c.body, 2);
    CHECK(p.status == c.status);
    CHECK_THAT(p.error, Catch::Contains(c.message));
    CHECK(p.records.empty());  // a batch is all or nothing
  }
}

TEST_CASE("events: the GIF's query parameters", "[events]") {
  std::vector<std::pair<std::string, std::string>> params{
      {"type", "pageview"}, {"site_id", "shop"}, {"visitor_id", "v"}, {"event_id", "g1"},
      {"url", "https://a.example/x"}, {"occurred_at", "17"}};
  auto p = parse_query_event(params, ctx(), known);
  REQUIRE(p.status == 202);
  CHECK(p.records[0].value ==
        R"({"event_id":"g1","type":"pageview","site_id":"shop","visitor_id":"v","occurred_at":17,"received_at":1700000000123,)"
        R"("url":"https://a.example/x","device":{"browser":"Chrome","os":"macOS","device_class":"desktop"},"country":"DE"})");
  params.emplace_back("title", "bad \xc3\x28");
  p = parse_query_event(params, ctx(), known);
  CHECK(p.status == 400);
  CHECK_THAT(p.error, Catch::Contains("parameter title is not valid UTF-8"));
  params.pop_back();
  params[5].second = "17x";
  p = parse_query_event(params, ctx(), known);
  CHECK(p.status == 400);
  CHECK_THAT(p.error, Catch::Contains("occurred_at must be an integer"));
}

TEST_CASE("stripe events: the record keeps the raw body and names what is missing", "[events]") {
  const std::string body =
      "{\"id\":\"evt_1\", \"type\":\"charge.refunded\",\"created\":1700000000,\"livemode\":false,"
      "\"api_version\":\"2025-03-31.basil\",\"data\":{\"object\":{\"id\":\"ch_1\",\"note\":\"a\\\"b\\n\"}}}\n";
  const auto r = stripe_event_record("shop", body, 1700000001000);
  REQUIRE(r);
  CHECK(r.event_id == "evt_1");
  simdjson::dom::parser parser;
  const auto doc = parser.parse(r.value).value();
  CHECK(std::string_view(doc["payload"]) == body);  // byte for byte
  CHECK(std::string_view(doc["site_id"]) == "shop");
  CHECK(std::string_view(doc["source"]) == "webhook");
  CHECK(std::int64_t(doc["received_at"]) == 1700000001000);
  CHECK(std::string_view(doc["event_type"]) == "charge.refunded");
  CHECK(std::string_view(doc["api_version"]) == "2025-03-31.basil");
  CHECK(std::int64_t(doc["created"]) == 1700000000);
  CHECK(bool(doc["livemode"]) == false);
  CHECK_THAT(stripe_event_record("shop", "[]", 1).error, Catch::Contains("not a Stripe event"));
  CHECK_THAT(stripe_event_record("shop", "{\"id\":\"ch_1\"}", 1).error, Catch::Contains("evt_"));
  CHECK_THAT(stripe_event_record("shop", "{\"id\":\"evt_1\",\"type\":\"x\",\"created\":1,\"livemode\":true}", 1).error,
             Catch::Contains("data.object"));
  CHECK_THAT(stripe_event_record("shop", "{", 1).error, Catch::Contains("not valid JSON"));
}
