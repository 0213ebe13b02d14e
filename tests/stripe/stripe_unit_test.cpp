// Unit tests of revtrace::stripe_api that need no server: currency rules, form encoding, the
// redirect URL, retry policy, Payment Link parameters, reconcile events — and that the engine
// takes a reconcile event and the webhook event for the same Stripe change as one observation.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "ingest/event_parser.hpp"
#include "processor/domain/engine.hpp"
#include "processor/domain/hashing.hpp"
#include "processor/domain/state_store.hpp"
#include "stripe_api/currency.hpp"
#include "stripe_api/keys.hpp"
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

// `text` with the first occurrence of `from` replaced by `to` (the fixture must contain it).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), to);
  return text;
}

// The captured charge of the fixture (which is an authorisation: captured false).
std::string captured_charge() {
  return replaced(replaced(fixture("object.charge.json"), "\"captured\": false", "\"captured\": true"),
                  "\"amount_captured\": 0", "\"amount_captured\": 100");
}

// The revtrace.stripe-events.v1 record the gateway writes for a webhook delivering `object`
// (built by the gateway's own code, ingest/event_parser.hpp).
std::string webhook_record(const std::string& event_id, const std::string& type,
                           const std::string& object) {
  const std::string body = R"({"id":")" + event_id +
                           R"(","object":"event","api_version":"2025-02-24.acacia","created":1744000000,"data":{"object":)" +
                           object + R"(},"livemode":false,"pending_webhooks":1,"type":")" + type +
                           R"("})";
  auto record = revtrace::ingest::stripe_event_record("acme", body, 1744000000123);
  INFO(record.error);
  REQUIRE(record);
  return record.value;
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
  const auto charge = captured_charge();
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
  CHECK(e->change_key == "charge/ch_1PgafuB7WZ01zgkWXYmPNZs8/100/0");
  // The fixture session is open: it stands for nothing until it is complete.
  const auto open = fixture("object.checkout.session.json");
  CHECK_FALSE(synthesize_event("checkout.session", open, "", why));
  CHECK(why.find("session open") != std::string::npos);
  const auto session = replaced(replaced(open, "\"status\": \"open\"", "\"status\": \"complete\""),
                                "\"payment_status\": \"unpaid\"", "\"payment_status\": \"paid\"");
  auto s = synthesize_event("checkout.session", session, "", why);
  INFO(why);
  REQUIRE(s);
  CHECK(s->type == "checkout.session.completed");
  CHECK(s->change_key == "checkout.session/" + s->object_id + "/paid");
  CHECK(delivered_change_key(stripe_events_record("acme", *s, "", 1)) == s->change_key);
  CHECK_FALSE(synthesize_event("invoice", charge, "", why));  // not an invoice
  CHECK(why.find("object is not invoice") != std::string::npos);
}

TEST_CASE("reconcile: the change key of a webhook record written by the gateway",
          "[stripe][reconcile]") {
  std::string why;
  // A charge the webhook delivered is the change reconcile derives from the same snapshot.
  const auto charge = captured_charge();
  const auto api_charge = synthesize_event("charge", charge, kReconcileApiVersion, why);
  REQUIRE(api_charge);
  CHECK(delivered_change_key(webhook_record("evt_hook_1", "charge.succeeded", charge)) ==
        api_charge->change_key);
  // Also the other types the webhook delivers for the changes reconcile lists.
  CHECK(delivered_change_key(webhook_record("evt_hook_2", "charge.captured", charge)) ==
        api_charge->change_key);
  const auto session =
      replaced(replaced(fixture("object.checkout.session.json"), "\"status\": \"open\"",
                        "\"status\": \"complete\""),
               "\"payment_status\": \"unpaid\"", "\"payment_status\": \"paid\"");
  const auto api_session = synthesize_event("checkout.session", session, kReconcileApiVersion, why);
  REQUIRE(api_session);
  CHECK(delivered_change_key(webhook_record("evt_hook_3", "checkout.session.completed", session)) ==
        api_session->change_key);
  CHECK(delivered_change_key(
            webhook_record("evt_hook_4", "checkout.session.async_payment_succeeded", session)) ==
        api_session->change_key);
  const auto invoice = replaced(fixture("object.invoice.json"), "\"status\": \"draft\"",
                                "\"status\": \"paid\"");
  const auto api_invoice = synthesize_event("invoice", invoice, kReconcileApiVersion, why);
  INFO(why);
  REQUIRE(api_invoice);
  for (const char* type : {"invoice.paid", "invoice.payment_succeeded"}) {
    CHECK(delivered_change_key(webhook_record("evt_hook_5", type, invoice)) ==
          api_invoice->change_key);
  }
  // Real deliveries as Stripe sent them (../stripe-fixtures/events), through the gateway's record.
  auto shared_event = [](const std::string& name) {
    const auto body = read_file("/work/shared/stripe-fixtures/events/" + name);
    REQUIRE_FALSE(body.empty());
    const auto record = revtrace::ingest::stripe_event_record("acme", body, 1744000000123);
    INFO(record.error);
    REQUIRE(record);
    return record.value;
  };
  CHECK(delivered_change_key(shared_event("invoice.payment_succeeded_api-2025-02-24.acacia_trimmed.json")) ==
        "invoice/in_PLACEHOLDER_0002/paid");
  // An authorisation (captured false): captured amount 0.
  CHECK(delivered_change_key(shared_event("charge.succeeded_api-2020-08-27.json")) ==
        "charge/ch_3KWSdjJKEym2H9Vg0qAid6Vb/0/0");
  // Event types reconcile never produces have no change key.
  CHECK_FALSE(delivered_change_key(webhook_record("evt_hook_6", "payment_intent.succeeded",
                                                  fixture("object.payment_intent.json"))));
}

TEST_CASE("reconcile: a delivered authorisation does not hide its capture", "[stripe][reconcile]") {
  std::string why;
  // charge.succeeded for an uncaptured charge was delivered; its charge.captured event was lost.
  const auto authorised = fixture("object.charge.json");
  const auto delivered =
      delivered_change_key(webhook_record("evt_auth", "charge.succeeded", authorised));
  REQUIRE(delivered);
  CHECK(*delivered == "charge/ch_1PgafuB7WZ01zgkWXYmPNZs8/0/0");
  // An authorisation listed by reconcile moved no money: it stands for no event.
  CHECK_FALSE(synthesize_event("charge", authorised, kReconcileApiVersion, why));
  CHECK(why.find("not captured") != std::string::npos);
  // Reconcile lists the charge captured: a change the topic does not show, so it is appended.
  const auto captured = synthesize_event("charge", captured_charge(), kReconcileApiVersion, why);
  REQUIRE(captured);
  CHECK(captured->type == "charge.succeeded");
  CHECK(captured->change_key == "charge/ch_1PgafuB7WZ01zgkWXYmPNZs8/100/0");
  CHECK(captured->change_key != *delivered);
  // A partial capture is its own amount; without amount_captured (older API versions) a captured
  // charge counts its amount, as the processor does.
  const auto partial = replaced(captured_charge(), "\"amount_captured\": 100", "\"amount_captured\": 60");
  CHECK(synthesize_event("charge", partial, "", why)->change_key ==
        "charge/ch_1PgafuB7WZ01zgkWXYmPNZs8/60/0");
  const auto old_shape = replaced(captured_charge(), "\"amount_captured\": 100,", "");
  CHECK(synthesize_event("charge", old_shape, "", why)->change_key ==
        "charge/ch_1PgafuB7WZ01zgkWXYmPNZs8/100/0");
  // A refund of the captured charge is a further change.
  const auto refunded = replaced(captured_charge(), "\"amount_refunded\": 0", "\"amount_refunded\": 40");
  const auto refund = synthesize_event("charge", refunded, "", why);
  REQUIRE(refund);
  CHECK(refund->type == "charge.refunded");
  CHECK(refund->change_key == "charge/ch_1PgafuB7WZ01zgkWXYmPNZs8/100/40");
  CHECK(delivered_change_key(webhook_record("evt_ref", "charge.refunded", refunded)) ==
        refund->change_key);
  // What the processor makes of it: the delivered authorisation is no revenue; the capture that
  // reconcile appends is the payment, counted with its captured amount.
  revtrace::domain::MemoryStateStore store;
  revtrace::domain::SiteSettings settings;
  settings.site_id = "acme";
  revtrace::domain::AttributionEngine engine(
      store, [&](std::string_view) -> const revtrace::domain::SiteSettings& { return settings; });
  const auto pending = engine.on_stripe_event(webhook_record("evt_auth", "charge.succeeded", authorised));
  INFO(pending.reason);
  CHECK(pending.kind != revtrace::domain::Outcome::Kind::invalid);
  CHECK(pending.revenue.empty());
  const auto counted = engine.on_stripe_event(
      stripe_events_record("acme", *captured, kReconcileApiVersion, 1744000000456));
  INFO(counted.reason);
  REQUIRE(counted.kind == revtrace::domain::Outcome::Kind::applied);
  REQUIRE(counted.revenue.size() == 1);
  CHECK(counted.revenue[0].value.find(R"("amount":100,"currency":"usd","refunded":0,"net":100)") !=
        std::string::npos);
}

TEST_CASE("reconcile: the topic is read from the widened listing window, an hour earlier",
          "[stripe][reconcile]") {
  const std::int64_t since = 1750000000;
  ReconcileWindow window;
  window.since = since;
  // Charges are listed from 7 days before (captures), sessions from 24 h before (completions):
  // whatever either keeps was delivered after the earlier of the two.
  CHECK(delivered_scan_start(window) == since - 7 * 86400 - 3600);
  window.charge_lookback = 0;
  CHECK(delivered_scan_start(window) == since - 86400 - 3600);
  // The invoices' 62 days do not count: an invoice is kept by its paid_at, in the window.
  window.session_lookback = 0;
  CHECK(delivered_scan_start(window) == since - 3600);
}

TEST_CASE("keys: reconcile warns without a restricted key, links fall back with a warning",
          "[stripe][keys]") {
  CHECK(api_key_kind("rk_test_abc") == KeyKind::restricted);
  CHECK(api_key_kind("rk_live_abc") == KeyKind::restricted);
  CHECK(api_key_kind("sk_test_abc") == KeyKind::secret);
  CHECK(api_key_kind("pk_live_abc") == KeyKind::publishable);
  CHECK(api_key_kind("whsec_abc") == KeyKind::unknown);
  CHECK(reconcile_key_warning("acme", "rk_live_abc").empty());
  const auto secret = reconcile_key_warning("acme", "sk_live_abc");
  CHECK(secret.find("site 'acme': stripe_api_key is a secret key (sk_...), not a restricted key "
                    "(rk_...)") == 0);
  CHECK(secret.find("read access to Checkout Sessions, Charges, Invoices, Refunds and Events,") !=
        std::string::npos);
  CHECK(reconcile_key_warning("acme", "pk_live_abc").find("publishable") != std::string::npos);
  CHECK(reconcile_key_warning("acme", "abc").find("not a Stripe key of a known kind") !=
        std::string::npos);
  const auto own = payment_links_key("acme", "rk_live_links", "rk_live_read");
  CHECK(own.key == "rk_live_links");
  CHECK(own.warning.empty());
  const auto fallback = payment_links_key("acme", "", "rk_live_read");
  CHECK(fallback.key == "rk_live_read");
  CHECK(fallback.warning.find("site 'acme' has no stripe_links_api_key") == 0);
  const auto none = payment_links_key("acme", "", "");
  CHECK(none.key.empty());
  CHECK(none.warning.empty());
}

TEST_CASE("engine: the reconcile event and the webhook event for one charge are one observation",
          "[stripe][reconcile]") {
  // The same charge snapshot delivered by webhook (its own evt_ id and created) and by reconcile.
  const std::string charge = captured_charge();  // a captured charge: revenue
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
