// The Stripe client against stripe-mock (which validates every parameter against Stripe's
// OpenAPI spec): Payment Link creation as Stripe expects it, Stripe's errors surfaced (400 on a
// bad parameter, 401 on a bad key), 429 with back-off through a loopback proxy in front of
// stripe-mock, the reconcile listings' parameters, pagination, timeouts.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "stripe_api/payment_links.hpp"
#include "stripe_api/reconcile.hpp"
#include "tests/stripe/fake_stripe.hpp"

using namespace revtrace::stripe_api;
using namespace revtrace::testing;

namespace {

std::string mock_url() {
  const char* file = std::getenv("REVTRACE_STRIPE_MOCK_URL_FILE");
  if (file == nullptr) throw std::runtime_error("REVTRACE_STRIPE_MOCK_URL_FILE is not set");
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  if (url.empty()) throw std::runtime_error(std::string("stripe-mock is not running: no URL in ") + file);
  return url;
}

ClientOptions options(const std::string& base, const std::string& key = "sk_test_123") {
  ClientOptions o;
  o.base_url = base;
  o.api_key = key;
  o.timeout = std::chrono::milliseconds(10000);
  o.initial_backoff = std::chrono::milliseconds(1);
  o.max_backoff = std::chrono::milliseconds(4);
  return o;
}

PaymentLinkSpec coaching() {
  PaymentLinkSpec s;
  s.site_id = "acme";
  s.amount = 5000;
  s.currency = "usd";
  s.product = "Coaching call";
  s.campaign = "podcast-may";
  s.source = "podcast";
  s.customer_email = "jane@example.com";
  s.redirect_url = "https://acme.example/thanks?plan=pro";
  return s;
}

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(REVTRACE_SOURCE_DIR) + "/processor/domain/testdata/stripe/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("stripe-mock: Payment Links are created with the parameters Stripe expects",
          "[stripe_mock]") {
  const StripeClient client(options(mock_url()));
  auto one_off = create_payment_link(client, coaching(), "");
  INFO(one_off.error << " " << one_off.api.body);
  REQUIRE(one_off.error.empty());
  CHECK(one_off.api.status == 200);
  CHECK(one_off.link->id.starts_with("plink_"));
  CHECK(one_off.link->url.starts_with("https://"));
  auto spec = coaching();
  spec.interval = "month";
  spec.currency = "JPY";
  spec.amount = 800;
  auto recurring = create_payment_link(client, spec, "fixed-key-1");
  INFO(recurring.error);
  REQUIRE(recurring.error.empty());
  const auto record = payment_link_record(spec, recurring.prepared, *recurring.link, 1744000000000, "");
  simdjson::dom::parser p;
  auto doc = p.parse(record);
  CHECK(std::string_view(doc["payment_link_id"]) == recurring.link->id);
  CHECK(std::string_view(doc["currency"]) == "jpy");
  CHECK(std::string_view(doc["interval"]) == "month");
}

TEST_CASE("stripe-mock: a bad parameter is a 400 whose message is surfaced, not retried",
          "[stripe_mock]") {
  const StripeClient client(options(mock_url()));
  auto prepared = prepare_payment_link(coaching(), "k");
  prepared.form.emplace_back("not_a_parameter", "1");
  const auto r = client.post("/v1/payment_links", prepared.form, "k-bad");
  CHECK(r.status == 400);
  CHECK(r.attempts == 1);
  REQUIRE(r.error.kind == ApiError::Kind::stripe);
  CHECK(r.error.type == "invalid_request_error");
  const auto text = r.error.describe();
  INFO(text);
  CHECK(text.starts_with("Stripe API 400 invalid_request_error"));
  CHECK(text.find("Request validation error") != std::string::npos);
  // A missing required parameter too (no line items at all).
  const auto missing = client.post("/v1/payment_links", {{"metadata[a]", "b"}});
  CHECK(missing.status == 400);
  CHECK(missing.error.describe().find("line_items") != std::string::npos);
}

TEST_CASE("stripe-mock: a bad key is a 401 naming the authentication problem", "[stripe_mock]") {
  const StripeClient client(options(mock_url(), "not-a-key"));
  const auto r = client.get("/v1/charges", {{"limit", "1"}});
  CHECK(r.status == 401);
  CHECK(r.attempts == 1);
  CHECK(r.error.describe().find("authenticate") != std::string::npos);
  const StripeClient no_key(options(mock_url(), ""));
  CHECK(no_key.get("/v1/charges").error.kind == ApiError::Kind::usage);
}

TEST_CASE("429 with back-off: a loopback proxy rate-limits twice, then passes to stripe-mock",
          "[stripe_mock][retry]") {
  const auto upstream = mock_url();
  std::atomic<int> calls{0};
  FakeStripe proxy([&](const FakeRequest& req) {
    if (calls.fetch_add(1) < 2) {
      auto res = fake_json(429, R"({"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}})");
      res.set("Retry-After", "1");
      return res;
    }
    return forward(req, upstream);
  });
  StripeClient client(options(proxy.base_url()));
  std::vector<std::chrono::milliseconds> waits;
  client.set_sleeper([&](std::chrono::milliseconds d) { waits.push_back(d); });
  std::size_t n = 0;
  const auto r = client.list("/v1/charges", {{"created[gte]", "0"}},
                             [&](std::string_view, std::string_view) { return ++n, true; });
  INFO(r.last.error.describe());
  REQUIRE(r.last.ok());
  CHECK(r.last.attempts == 3);
  CHECK(n >= 1);
  CHECK(waits == std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(1000),
                                                       std::chrono::milliseconds(1000)});
  // Retries exhausted: the 429 is surfaced.
  calls = -100;
  auto limited = options(proxy.base_url());
  limited.max_retries = 2;
  StripeClient impatient(limited);
  impatient.set_sleeper([](std::chrono::milliseconds) {});
  const auto gave_up = impatient.get("/v1/charges");
  CHECK(gave_up.status == 429);
  CHECK(gave_up.attempts == 3);
  CHECK(gave_up.error.describe().find("rate_limit") != std::string::npos);
  // Stripe-Should-Retry: false wins over the status.
  FakeStripe no_retry([](const FakeRequest&) {
    auto res = fake_json(503, R"({"error":{"type":"api_error","message":"down"}})");
    res.set("Stripe-Should-Retry", "false");
    return res;
  });
  const auto once = StripeClient(options(no_retry.base_url())).get("/v1/charges");
  CHECK(once.attempts == 1);
  CHECK(once.status == 503);
}

TEST_CASE("a POST keeps its Idempotency-Key across retries", "[stripe_mock][retry]") {
  const auto upstream = mock_url();
  std::atomic<int> calls{0};
  FakeStripe proxy([&](const FakeRequest& req) {
    if (calls.fetch_add(1) == 0) return fake_json(500, R"({"error":{"type":"api_error","message":"boom"}})");
    return forward(req, upstream);
  });
  StripeClient client(options(proxy.base_url()));
  client.set_sleeper([](std::chrono::milliseconds) {});
  const auto created = create_payment_link(client, coaching(), "idem-42");
  REQUIRE(created.error.empty());
  const auto reqs = proxy.requests();
  REQUIRE(reqs.size() == 2);
  for (const auto& r : reqs) {
    CHECK(r["Idempotency-Key"] == "idem-42");
    CHECK(r[boost::beast::http::field::authorization] == "Bearer sk_test_123");
    CHECK(r[boost::beast::http::field::content_type] == "application/x-www-form-urlencoded");
  }
}

TEST_CASE("stripe-mock: the reconcile listings' parameters are valid", "[stripe_mock][reconcile]") {
  auto o = options(mock_url());
  o.stripe_version = std::string(kReconcileApiVersion);
  const StripeClient client(o);
  const auto out = fetch_reconcile_events(client, {1700000000, 0});
  INFO(out.error);
  REQUIRE(out.error.empty());
  CHECK(out.listed.at("/v1/checkout/sessions") >= 1);
  CHECK(out.listed.at("/v1/charges") >= 1);
  CHECK(out.listed.at("/v1/invoices") >= 1);
  CHECK(out.listed.at("/v1/refunds") >= 1);
}

TEST_CASE("pagination: starting_after the last id while has_more", "[stripe_mock][pagination]") {
  const std::string charge = fixture("object.charge.json");
  simdjson::dom::parser p;
  auto page = [&](int from, int to, bool more) {
    std::string body = R"({"object":"list","url":"/v1/charges","has_more":)" +
                       std::string(more ? "true" : "false") + R"(,"data":[)";
    for (int i = from; i < to; ++i) {
      std::string c = charge;
      const auto at = c.find("\"id\"");
      const auto start = c.find('"', c.find(':', at)) + 1;
      c.replace(start, c.find('"', start) - start, "ch_page" + std::to_string(i));
      body += (i > from ? "," : "") + c;
    }
    return body + "]}";
  };
  FakeStripe fake([&](const FakeRequest& req) {
    const std::string target(req.target());
    if (target.find("starting_after=ch_page1&") != std::string::npos ||
        target.ends_with("starting_after=ch_page1")) {
      return fake_json(200, page(2, 4, true));
    }
    if (target.find("starting_after=ch_page3") != std::string::npos) return fake_json(200, page(4, 5, false));
    return fake_json(200, page(0, 2, true));
  });
  const StripeClient client(options(fake.base_url()));
  std::vector<std::string> ids;
  const auto r = client.list("/v1/charges", {{"created[gte]", "5"}}, [&](std::string_view id, std::string_view json) {
    ids.emplace_back(id);
    CHECK(json.find("\"object\":\"charge\"") != std::string_view::npos);
    return true;
  }, 2);
  INFO(r.last.error.describe());
  REQUIRE(r.last.ok());
  CHECK(r.pages == 3);
  CHECK(ids == std::vector<std::string>{"ch_page0", "ch_page1", "ch_page2", "ch_page3", "ch_page4"});
  const auto reqs = fake.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(std::string(reqs[0].target()) == "/v1/charges?created[gte]=5&limit=2");
  CHECK(std::string(reqs[2].target()) == "/v1/charges?created[gte]=5&limit=2&starting_after=ch_page3");
  // A page claiming has_more with no data would loop forever: an error instead.
  FakeStripe broken([](const FakeRequest&) {
    return fake_json(200, R"({"object":"list","has_more":true,"data":[]})");
  });
  const auto bad = StripeClient(options(broken.base_url())).list("/v1/charges", {}, [](auto, auto) { return true; });
  CHECK(bad.last.error.kind == ApiError::Kind::invalid_response);
}

TEST_CASE("a server that does not answer in time is a transport error after the deadline",
          "[stripe_mock][timeout]") {
  FakeStripe slow([](const FakeRequest&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return fake_json(200, "{}");
  });
  auto o = options(slow.base_url());
  o.timeout = std::chrono::milliseconds(200);
  o.max_retries = 0;
  const auto r = StripeClient(o).get("/v1/charges");
  CHECK(r.error.kind == ApiError::Kind::transport);
  CHECK(r.error.describe().find("timed out") != std::string::npos);
}
