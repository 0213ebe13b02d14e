// The Stripe client against stripe-mock (which validates every parameter against Stripe's
// OpenAPI spec): Payment Link creation as Stripe expects it, Stripe's errors surfaced (400 on a
// bad parameter, 401 on a bad key), 429 with back-off through a loopback proxy in front of
// stripe-mock, the reconcile listings' parameters, pagination, timeouts.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
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

// Objects and pages of a Stripe account, for the loopback fakes of the reconcile tests.
std::string paid_invoice(const std::string& id, std::int64_t created, std::int64_t paid_at) {
  return R"({"id":")" + id + R"(","object":"invoice","status":"paid","livemode":false,"created":)" +
         std::to_string(created) + R"(,"amount_paid":1000,"currency":"usd","status_transitions":{"paid_at":)" +
         std::to_string(paid_at) + "}}";
}

// A succeeded, captured charge of 1000; `capture_before` > 0 makes it a manual capture, `invoice`
// names the invoice it paid.
std::string captured_charge(const std::string& id, std::int64_t created,
                            const std::string& invoice_id = {}, std::int64_t capture_before = 0,
                            int refunded = 0) {
  return R"({"id":")" + id + R"(","object":"charge","status":"succeeded","paid":true,"captured":true,)"
         R"("amount":1000,"amount_captured":1000,"amount_refunded":)" + std::to_string(refunded) +
         R"(,"currency":"usd","livemode":false,"created":)" + std::to_string(created) +
         R"(,"payment_method_details":{"type":"card","card":{"brand":"visa")" +
         (capture_before > 0 ? ",\"capture_before\":" + std::to_string(capture_before) : "") +
         "}},\"invoice\":" + (invoice_id.empty() ? "null" : "\"" + invoice_id + "\"") + "}";
}

std::string completed_session(const std::string& id, std::int64_t created, std::int64_t expires_at) {
  return R"({"id":")" + id + R"(","object":"checkout.session","status":"complete","payment_status":"paid",)"
         R"("mode":"payment","amount_total":1000,"currency":"usd","livemode":false,"created":)" +
         std::to_string(created) + R"(,"expires_at":)" + std::to_string(expires_at) + "}";
}

std::string event(const std::string& id, const std::string& type, std::int64_t created,
                  const std::string& object_id) {
  return R"({"id":")" + id + R"(","object":"event","type":")" + type + R"(","created":)" +
         std::to_string(created) + R"(,"livemode":false,"data":{"object":{"id":")" + object_id + "\"}}}";
}

std::string refund(const std::string& id, const std::string& charge, std::int64_t created) {
  return R"({"id":")" + id + R"(","object":"refund","amount":300,"currency":"usd","status":"succeeded",)"
         R"("charge":")" + charge + R"(","created":)" + std::to_string(created) + "}";
}

std::string list_of(const std::vector<std::string>& objects) {
  std::string body = R"({"object":"list","has_more":false,"data":[)";
  for (std::size_t i = 0; i < objects.size(); ++i) body += (i ? "," : "") + objects[i];
  return body + "]}";
}

// Answers each path (query ignored) from `answers`, 404 for anything else.
FakeResponse answer_paths(const FakeRequest& req, const std::map<std::string, std::string>& answers) {
  const std::string target(req.target());
  const auto it = answers.find(target.substr(0, target.find('?')));
  if (it == answers.end()) {
    return fake_json(404, R"({"error":{"type":"invalid_request_error","message":"No such object"}})");
  }
  return fake_json(200, it->second);
}

std::map<std::string, std::int64_t> changes_of(const FetchOutcome& out) {
  std::map<std::string, std::int64_t> events;  // change key -> created
  for (const auto& e : out.events) events[e.change_key] = e.created;
  return events;
}

std::vector<std::string> targets_of(const FakeStripe& fake) {
  std::vector<std::string> targets;
  for (const auto& r : fake.requests()) targets.emplace_back(r.target());
  return targets;
}

const std::string kEvidenceTypes =
    "types[]=checkout.session.completed&types[]=checkout.session.async_payment_succeeded&"
    "types[]=charge.captured&types[]=invoice.paid";

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
  CHECK(out.listed.at("/v1/events") >= 1);  // types[] and created accepted
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

TEST_CASE("stripe-mock: the client's limit and starting_after are accepted by stripe-mock itself",
          "[stripe_mock][pagination]") {
  const auto upstream = mock_url();
  std::mutex mu;
  std::vector<std::pair<std::string, unsigned>> seen;  // target, stripe-mock's status
  // stripe-mock's lists end after one page; the proxy claims more on the first page, so that the
  // client's next-page request goes to stripe-mock unchanged.
  FakeStripe proxy([&](const FakeRequest& req) {
    auto res = forward(req, upstream);
    const std::string target(req.target());
    {
      std::lock_guard lock(mu);
      seen.emplace_back(target, res.result_int());
    }
    // The list's own flag: the last one in the body (nested lists, e.g. a charge's refunds, sit
    // in `data`, which stripe-mock writes first). Compact JSON (pretty only for curl).
    const std::string last_page = "\"has_more\":false";
    const auto at = res.body().rfind(last_page);
    if (target.find("starting_after=") == std::string::npos && at != std::string::npos) {
      res.body().replace(at, last_page.size(), "\"has_more\":true");
      res.prepare_payload();
    }
    return res;
  });
  const StripeClient client(options(proxy.base_url()));
  std::vector<std::string> ids;
  const auto r = client.list(
      "/v1/charges", {{"created[gte]", "1700000000"}},
      [&](std::string_view id, std::string_view) { return ids.emplace_back(id), true; }, 1);
  INFO(r.last.error.describe());
  REQUIRE(r.last.ok());
  CHECK(r.pages == 2);
  REQUIRE(ids.size() == 2);
  std::lock_guard lock(mu);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == std::pair<std::string, unsigned>{"/v1/charges?created[gte]=1700000000&limit=1", 200});
  CHECK(seen[1] == std::pair<std::string, unsigned>{
                       "/v1/charges?created[gte]=1700000000&limit=1&starting_after=" + ids[0], 200});
  // stripe-mock does validate list parameters: the 200s above are its verdict.
  const auto bad = StripeClient(options(upstream)).get("/v1/charges", {{"limit", "many"}});
  CHECK(bad.status == 400);
  CHECK(bad.error.describe().find("'limit' validation failed") != std::string::npos);
}

TEST_CASE("reconcile: invoices paid in the window are found whenever they were created",
          "[stripe_mock][reconcile]") {
  const std::int64_t since = 1750000000;
  const std::int64_t until = since + 1000;
  const std::int64_t day = 86400;
  const std::map<std::string, std::string> answers{
      // invoice.paid in the window: an invoice created long before, paid without a charge (from
      // the customer's balance); and one the listing shows as well.
      {"/v1/events", list_of({event("evt_balance", "invoice.paid", since + 70, "in_balance"),
                              event("evt_listed", "invoice.paid", since + 20, "in_listed")})},
      {"/v1/refunds", list_of({})},
      {"/v1/checkout/sessions", list_of({})},
      // Two payments of the window, each naming the invoice it paid.
      {"/v1/charges", list_of({captured_charge("ch_pays_listed", since + 20, "in_listed"),
                               captured_charge("ch_pays_ancient", since + 50, "in_ancient")})},
      // Listed by creation since since - 62 days:
      {"/v1/invoices",
       list_of({paid_invoice("in_listed", since + 10, since + 20),        // created and paid in the window
                paid_invoice("in_early", since - 10 * day, since + 100),  // created before, paid in it
                paid_invoice("in_before", since - 5 * day, since - 3600),  // paid before the window
                paid_invoice("in_after", since + 10, until + 4000)})},    // paid after the window
      // Created before even the wider window (a long dunning), paid by ch_pays_ancient.
      {"/v1/invoices/in_ancient", paid_invoice("in_ancient", since - 100 * day, since + 50)},
      {"/v1/invoices/in_balance", paid_invoice("in_balance", since - 200 * day, since + 70)},
  };
  FakeStripe fake([&](const FakeRequest& req) { return answer_paths(req, answers); });
  auto o = options(fake.base_url());
  o.stripe_version = std::string(kReconcileApiVersion);
  ReconcileWindow window;
  window.since = since;
  window.until = until;
  window.now = until + 60;
  const auto out = fetch_reconcile_events(StripeClient(o), window);
  INFO(out.error);
  REQUIRE(out.error.empty());
  CHECK(out.events_complete);
  CHECK(out.warnings.empty());
  CHECK(changes_of(out) == std::map<std::string, std::int64_t>{
                               {"charge/ch_pays_listed/1000/0", since + 20},
                               {"charge/ch_pays_ancient/1000/0", since + 50},
                               {"invoice/in_listed/paid", since + 20},
                               {"invoice/in_early/paid", since + 100},
                               {"invoice/in_ancient/paid", since + 50},
                               {"invoice/in_balance/paid", since + 70},
                           });
  CHECK(out.skipped == 2);  // in_before, in_after
  const std::string window_q = "created[gte]=" + std::to_string(since) +
                               "&created[lt]=" + std::to_string(until);
  auto from = [&](std::int64_t start) {
    return "created[gte]=" + std::to_string(start) + "&created[lt]=" + std::to_string(until);
  };
  CHECK(targets_of(fake) == std::vector<std::string>{
                                "/v1/events?" + window_q + "&" + kEvidenceTypes + "&limit=100",
                                "/v1/refunds?" + window_q + "&limit=100",
                                "/v1/checkout/sessions?" + from(since - day) + "&status=complete&limit=100",
                                "/v1/charges?" + from(since - 7 * day) + "&limit=100",
                                "/v1/invoices?" + from(since - 62 * day) + "&status=paid&limit=100",
                                "/v1/invoices/in_ancient",
                                "/v1/invoices/in_balance",
                            });
  CHECK(out.requests == 7);
}

TEST_CASE("reconcile: sessions completed and charges captured in the window are found though "
          "created before it",
          "[stripe_mock][reconcile]") {
  const std::int64_t since = 1750000000;
  const std::int64_t until = since + 1000;
  const std::int64_t day = 86400;
  const std::int64_t hour = 3600;
  // Events as Stripe lists them for the window (it filters by `created`).
  const std::string events =
      list_of({event("evt_1", "checkout.session.completed", since + 30, "cs_early"),
               event("evt_2", "charge.captured", since + 40, "ch_auth"),
               // an extended authorisation (up to 30 days): not in the 7-day listing
               event("evt_3", "charge.captured", since + 50, "ch_extended"),
               // a bank debit paid days after its session completed unpaid
               event("evt_4", "checkout.session.async_payment_succeeded", since + 60, "cs_bank"),
               // outside the window (a server that does not filter): no evidence
               event("evt_5", "checkout.session.completed", since - 10, "cs_before")});
  std::map<std::string, std::string> answers{
      {"/v1/events", events},
      {"/v1/refunds", list_of({refund("re_1", "ch_refund", since + 70)})},
      {"/v1/checkout/sessions",
       list_of({completed_session("cs_in", since + 10, since + 10 + day),
                // created an hour before, completed in the window (evt_1)
                completed_session("cs_early", since - hour, since - hour + day),
                // created two hours before, completed before the window: no event in it
                completed_session("cs_before", since - 2 * hour, since - 2 * hour + day),
                // expired before the window began
                completed_session("cs_expired", since - 20 * hour, since - 1)})},
      {"/v1/charges",
       list_of({captured_charge("ch_in", since + 20),
                // authorised 2 days before, captured in the window (evt_2)
                captured_charge("ch_auth", since - 2 * day, {}, since + 5 * day),
                // captured automatically when created, 3 days before
                captured_charge("ch_auto", since - 3 * day),
                // authorised 4 days before and captured before the window: no event in it
                captured_charge("ch_manual_before", since - 4 * day, {}, since + 3 * day),
                // captured 6 days before, refunded in the window (re_1)
                captured_charge("ch_refund", since - 6 * day, {}, 0, 300)})},
      {"/v1/invoices", list_of({})},
      {"/v1/charges/ch_extended", captured_charge("ch_extended", since - 20 * day, {}, since + 10 * day)},
      {"/v1/checkout/sessions/cs_bank", completed_session("cs_bank", since - 5 * day, since - 4 * day)},
  };
  auto o = options("");
  o.stripe_version = std::string(kReconcileApiVersion);
  ReconcileWindow window;
  window.since = since;
  window.until = until;
  window.now = until + 60;
  const std::string window_q = "created[gte]=" + std::to_string(since) +
                               "&created[lt]=" + std::to_string(until);
  auto from = [&](std::int64_t start) {
    return "created[gte]=" + std::to_string(start) + "&created[lt]=" + std::to_string(until);
  };
  const std::vector<std::string> listings{
      "/v1/events?" + window_q + "&" + kEvidenceTypes + "&limit=100",
      "/v1/refunds?" + window_q + "&limit=100",
      "/v1/checkout/sessions?" + from(since - day) + "&status=complete&limit=100",
      "/v1/charges?" + from(since - 7 * day) + "&limit=100",
      "/v1/invoices?" + from(since - 62 * day) + "&status=paid&limit=100",
  };

  SECTION("with the events: exactly what changed in the window") {
    FakeStripe fake([&](const FakeRequest& req) { return answer_paths(req, answers); });
    o.base_url = fake.base_url();
    const auto out = fetch_reconcile_events(StripeClient(o), window);
    INFO(out.error);
    REQUIRE(out.error.empty());
    CHECK(out.events_complete);
    CHECK(out.warnings.empty());
    CHECK(changes_of(out) == std::map<std::string, std::int64_t>{
                                 {"checkout.session/cs_in/paid", since + 10},
                                 {"checkout.session/cs_early/paid", since - hour},
                                 {"checkout.session/cs_bank/paid", since - 5 * day},
                                 {"charge/ch_in/1000/0", since + 20},
                                 {"charge/ch_auth/1000/0", since - 2 * day},
                                 {"charge/ch_extended/1000/0", since - 20 * day},
                                 {"charge/ch_refund/1000/300", since - 6 * day},
                             });
    CHECK(out.skipped == 4);  // cs_before, cs_expired, ch_auto, ch_manual_before
    auto expected = listings;
    expected.emplace_back("/v1/charges/ch_extended");
    expected.emplace_back("/v1/checkout/sessions/cs_bank");
    CHECK(targets_of(fake) == expected);
    CHECK(out.listed == std::map<std::string, std::size_t>{{"/v1/events", 5},
                                                           {"/v1/refunds", 1},
                                                           {"/v1/checkout/sessions", 4},
                                                           {"/v1/charges", 5},
                                                           {"/v1/invoices", 0}});
  }

  SECTION("without the Events permission: what could have changed in the window") {
    answers.erase("/v1/events");
    FakeStripe fake([&](const FakeRequest& req) {
      if (std::string(req.target()).starts_with("/v1/events")) {
        return fake_json(403, R"({"error":{"type":"invalid_request_error","message":"The provided key 'rk_test_***' does not have the required permissions for this endpoint. Having the 'rak_event_read' permission would allow this request to continue."}})");
      }
      return answer_paths(req, answers);
    });
    o.base_url = fake.base_url();
    const auto out = fetch_reconcile_events(StripeClient(o), window);
    INFO(out.error);
    REQUIRE(out.error.empty());
    CHECK_FALSE(out.events_complete);
    REQUIRE(out.warnings.size() == 1);
    CHECK(out.warnings[0].starts_with("GET /v1/events: Stripe API 403 invalid_request_error"));
    // cs_before and ch_manual_before could have changed in the window and are kept; cs_expired
    // and ch_auto could not. ch_extended and cs_bank are named by no listing: not found.
    CHECK(changes_of(out) == std::map<std::string, std::int64_t>{
                                 {"checkout.session/cs_in/paid", since + 10},
                                 {"checkout.session/cs_early/paid", since - hour},
                                 {"checkout.session/cs_before/paid", since - 2 * hour},
                                 {"charge/ch_in/1000/0", since + 20},
                                 {"charge/ch_auth/1000/0", since - 2 * day},
                                 {"charge/ch_manual_before/1000/0", since - 4 * day},
                                 {"charge/ch_refund/1000/300", since - 6 * day},
                             });
    CHECK(out.skipped == 2);  // cs_expired, ch_auto
    CHECK(targets_of(fake) == listings);
  }

  SECTION("a window older than Stripe keeps events: the named objects and what could have changed") {
    FakeStripe fake([&](const FakeRequest& req) { return answer_paths(req, answers); });
    o.base_url = fake.base_url();
    window.now = since + 31 * day;
    const auto out = fetch_reconcile_events(StripeClient(o), window);
    INFO(out.error);
    REQUIRE(out.error.empty());
    CHECK_FALSE(out.events_complete);
    REQUIRE(out.warnings.size() == 1);
    CHECK(out.warnings[0].starts_with("--since is more than 30 days ago"));
    std::set<std::string> keys;
    for (const auto& e : out.events) keys.insert(e.change_key);
    CHECK(keys == std::set<std::string>{
                      "checkout.session/cs_in/paid", "checkout.session/cs_early/paid",
                      "checkout.session/cs_before/paid", "checkout.session/cs_bank/paid",
                      "charge/ch_in/1000/0", "charge/ch_auth/1000/0",
                      "charge/ch_manual_before/1000/0", "charge/ch_extended/1000/0",
                      "charge/ch_refund/1000/300"});
  }
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
