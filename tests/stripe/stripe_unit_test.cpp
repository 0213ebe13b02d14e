// Unit tests of revtrace::stripe_api that need no server: currency rules, form encoding, the
// redirect URL, retry policy, Payment Link parameters, reconcile events — and that the engine
// takes a reconcile event and the webhook event for the same Stripe change as one observation.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "processor/domain/engine.hpp"
#include "processor/domain/hashing.hpp"
#include "processor/domain/state_store.hpp"
#include "stripe_api/currency.hpp"
#include "stripe_api/payment_links.hpp"
#include "stripe_api/reconcile.hpp"

using namespace revtrace::stripe_api;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string fixture(const std::string& name) {
  return read_file(std::string(REVTRACE_SOURCE_DIR) + "/processor/domain/testdata/stripe/" + name);
}

std::string form_value(const Form& f, const std::string& key) {
  for (const auto& [k, v] : f) {
    if (k == key) return v;
  }
  return "<absent>";
}

}  // namespace

TEST_CASE("currencies: ISO 4217, zero- and three-decimal rules", "[stripe][currency]") {
  struct Row {
    std::int64_t amount;
    const char* currency;
    bool ok;
    const char* error_part;
  };
  const Row rows[] = {
      {5000, "usd", true, ""},
      {5000, "USD", true, ""},
      {800, "jpy", true, ""},          // zero-decimal: ¥800
      {1, "krw", true, ""},
      {5010, "kwd", true, ""},         // three-decimal, last digit 0
      {5001, "kwd", false, "last digit must be 0"},
      {1235, "bhd", false, "three-decimal"},
      {10000, "isk", true, ""},
      {10050, "isk", false, "multiples of 100"},
      {150, "ugx", false, "multiples of 100"},
      {0, "usd", false, "positive"},
      {-5, "eur", false, "positive"},
      {100000000, "usd", false, "maximum"},
      {99999999, "usd", true, ""},
      {100, "xyz", false, "not an ISO 4217"},
      {100, "us", false, "not an ISO 4217"},
      {100, "", false, "not an ISO 4217"},
  };
  for (const auto& r : rows) {
    INFO(r.amount << " " << r.currency);
    const auto c = check_amount(r.amount, r.currency);
    CHECK(c.ok() == r.ok);
    if (!r.ok) CHECK(c.error.find(r.error_part) != std::string::npos);
    if (r.ok) CHECK(c.currency == std::string(r.currency == std::string("USD") ? "usd" : r.currency));
  }
  CHECK(stripe_minor_digits("jpy") == 0);
  CHECK(stripe_minor_digits("KWD") == 3);
  CHECK(stripe_minor_digits("eur") == 2);
}

TEST_CASE("form encoding and the redirect URL", "[stripe][form]") {
  CHECK(form_encode({{"a[b][0]", "x y&z=é"}, {"k", "~._-"}}) == "a[b][0]=x%20y%26z%3D%C3%A9&k=~._-");
  CHECK(with_session_id_placeholder("https://shop.example/thanks") ==
        "https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}");
  CHECK(with_session_id_placeholder("https://shop.example/thanks?plan=pro#top") ==
        "https://shop.example/thanks?plan=pro&session_id={CHECKOUT_SESSION_ID}#top");
  CHECK(with_session_id_placeholder("https://shop.example/t?") ==
        "https://shop.example/t?session_id={CHECKOUT_SESSION_ID}");
  CHECK_FALSE(with_session_id_placeholder("shop.example/thanks"));
  CHECK_FALSE(with_session_id_placeholder("javascript:alert(1)"));
  CHECK_FALSE(with_session_id_placeholder("https:///x"));
}

TEST_CASE("retry policy: 409, 429, 5xx, Stripe-Should-Retry, Retry-After, back-off", "[stripe][retry]") {
  CHECK(is_retriable_status(429, ""));
  CHECK(is_retriable_status(409, ""));
  CHECK(is_retriable_status(500, ""));
  CHECK(is_retriable_status(503, ""));
  CHECK_FALSE(is_retriable_status(400, ""));
  CHECK_FALSE(is_retriable_status(401, ""));
  CHECK_FALSE(is_retriable_status(402, ""));
  CHECK_FALSE(is_retriable_status(404, ""));
  CHECK(is_retriable_status(400, "true"));
  CHECK_FALSE(is_retriable_status(500, "false"));
  ClientOptions o;
  o.initial_backoff = std::chrono::milliseconds(500);
  o.max_backoff = std::chrono::milliseconds(8000);
  CHECK(retry_delay(o, 0, "", 1.0) == std::chrono::milliseconds(500));
  CHECK(retry_delay(o, 0, "", 0.0) == std::chrono::milliseconds(250));
  CHECK(retry_delay(o, 3, "", 1.0) == std::chrono::milliseconds(4000));
  CHECK(retry_delay(o, 10, "", 1.0) == std::chrono::milliseconds(8000));
  CHECK(retry_delay(o, 0, "7", 0.0) == std::chrono::milliseconds(7000));
  CHECK(retry_delay(o, 0, "100000", 0.0) == o.max_retry_after);
  CHECK(retry_delay(o, 1, "soon", 1.0) == std::chrono::milliseconds(1000));  // not seconds: ignored
}

TEST_CASE("Payment Link parameters: price_data, metadata copies, redirect", "[stripe][payment_link]") {
  PaymentLinkSpec s;
  s.site_id = "acme";
  s.amount = 5000;
  s.currency = "USD";
  s.product = "Coaching call";
  s.campaign = "may";
  s.customer_email = " Jane@Example.com";
  s.redirect_url = "https://acme.example/thanks?x=1";
  const auto p = prepare_payment_link(s, "key-1");
  REQUIRE(p.ok());
  CHECK(p.link_id == prepare_payment_link(s, "key-1").link_id);  // same key, same link id
  CHECK(p.link_id != prepare_payment_link(s, "key-2").link_id);
  CHECK(form_value(p.form, "line_items[0][price_data][currency]") == "usd");
  CHECK(form_value(p.form, "line_items[0][price_data][unit_amount]") == "5000");
  CHECK(form_value(p.form, "line_items[0][price_data][product_data][name]") == "Coaching call");
  CHECK(form_value(p.form, "line_items[0][quantity]") == "1");
  CHECK(form_value(p.form, "metadata[revtrace_site]") == "acme");
  CHECK(form_value(p.form, "metadata[revtrace_link]") == p.link_id);
  CHECK(form_value(p.form, "metadata[revtrace_campaign]") == "may");
  CHECK(form_value(p.form, "metadata[revtrace_customer_email]") == "jane@example.com");
  CHECK(form_value(p.form, "payment_intent_data[metadata][revtrace_campaign]") == "may");
  CHECK(form_value(p.form, "subscription_data[metadata][revtrace_campaign]") == "<absent>");
  CHECK(form_value(p.form, "after_completion[type]") == "redirect");
  CHECK(form_value(p.form, "after_completion[redirect][url]") ==
        "https://acme.example/thanks?x=1&session_id={CHECKOUT_SESSION_ID}");
  s.interval = "month";
  const auto sub = prepare_payment_link(s, "key-1");
  REQUIRE(sub.ok());
  CHECK(form_value(sub.form, "line_items[0][price_data][recurring][interval]") == "month");
  CHECK(form_value(sub.form, "subscription_data[metadata][revtrace_link]") == sub.link_id);
  CHECK(form_value(sub.form, "payment_intent_data[metadata][revtrace_link]") == "<absent>");
  s.interval = "fortnight";
  CHECK(prepare_payment_link(s, "k").error.find("interval") != std::string::npos);
  s.interval.clear();
  s.customer_email = "not-an-email";
  CHECK(prepare_payment_link(s, "k").error.find("not an email") != std::string::npos);
  s.customer_email.clear();
  s.redirect_url = "/thanks";
  CHECK(prepare_payment_link(s, "k").error.find("redirect URL") != std::string::npos);
  // The record's email hash is the processor's.
  CHECK(customer_email_hash("", "acme", " Jane@Example.com") ==
        revtrace::domain::email_hash("revtrace-email:acme", "jane@example.com"));
}

TEST_CASE("reconcile events: ids from the change, delivered keys agree", "[stripe][reconcile]") {
  const auto charge = fixture("object.charge.json");
  std::string why;
  auto e = synthesize_event("charge", charge, kReconcileApiVersion, why);
  REQUIRE(e);
  auto again = synthesize_event("charge", charge, kReconcileApiVersion, why);
  CHECK(e->event_id == again->event_id);  // deterministic
  CHECK(e->event_id.starts_with("evt_rtapi_"));
  const auto record = stripe_events_record("acme", *e, kReconcileApiVersion, 1744000000000);
  CHECK(record.find(R"("source":"api")") != std::string::npos);
  REQUIRE(delivered_change_key(record));
  CHECK(*delivered_change_key(record) == e->change_key);
  const auto session = fixture("object.checkout.session.json");
  auto s = synthesize_event("checkout.session", session, "", why);
  if (s) CHECK(delivered_change_key(stripe_events_record("acme", *s, "", 1)) == s->change_key);
  CHECK_FALSE(synthesize_event("invoice", charge, "", why));  // not an invoice
  CHECK(why.find("object is not invoice") != std::string::npos);
}

TEST_CASE("engine: the reconcile event and the webhook event for one charge are one observation",
          "[stripe][reconcile]") {
  // The same charge snapshot delivered by webhook (its own evt_ id and created) and by reconcile.
  std::string charge = fixture("object.charge.json");
  auto set = [&](const std::string& from, const std::string& to) {
    const auto at = charge.find(from);
    REQUIRE(at != std::string::npos);
    charge.replace(at, from.size(), to);
  };
  set("\"captured\": false", "\"captured\": true");  // a captured charge: revenue
  set("\"amount_captured\": 0", "\"amount_captured\": 100");
  std::string why;
  auto api = synthesize_event("charge", charge, kReconcileApiVersion, why);
  REQUIRE(api);
  const std::string webhook_payload =
      R"({"id":"evt_webhook_1","object":"event","api_version":"2025-02-24.acacia","created":)" +
      std::to_string(api->created + 3) + R"(,"data":{"object":)" + charge +
      R"(},"livemode":false,"type":")" + api->type + R"("})";
  std::string webhook_record = R"({"site_id":"acme","source":"webhook","received_at":1744000000000,"event_id":"evt_webhook_1","event_type":")" +
                               api->type + R"(","livemode":false,"api_version":null,"created":1,"payload":")";
  for (const char c : webhook_payload) {
    if (c == '"' || c == '\\') webhook_record += '\\';
    if (c == '\n') {
      webhook_record += "\\n";
      continue;
    }
    webhook_record += c;
  }
  webhook_record += "\"}";
  for (const bool webhook_first : {true, false}) {
    revtrace::domain::MemoryStateStore store;
    revtrace::domain::SiteSettings settings;
    settings.site_id = "acme";
    revtrace::domain::AttributionEngine engine(
        store, [&](std::string_view) -> const revtrace::domain::SiteSettings& { return settings; });
    const auto api_record = stripe_events_record("acme", *api, kReconcileApiVersion, 1744000000001);
    const auto first = engine.on_stripe_event(webhook_first ? webhook_record : api_record);
    INFO(first.reason);
    REQUIRE(first.kind == revtrace::domain::Outcome::Kind::applied);
    REQUIRE(first.revenue.size() == 1);
    const auto second = engine.on_stripe_event(webhook_first ? api_record : webhook_record);
    INFO(second.reason);
    CHECK(second.kind == revtrace::domain::Outcome::Kind::skipped);  // adds nothing: counted once
    CHECK(second.revenue.empty());
  }
}
