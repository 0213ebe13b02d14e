#pragma once
// Test support for the engine tests (header-only; included by *_test.cpp only).
//
// Builds input records the way producers write them: Stripe events by editing Stripe's own
// fixture objects (testdata/stripe, copied from the shared public fixtures) and wrapping them in
// the webhook envelope and the revtrace.stripe-events.v1 record; web events and redirects per
// the topic contract. A Harness feeds records to a fresh engine over a MemoryStateStore and keeps
// the latest record per key the way a consumer of the compacted output topic would, checking the
// contract's invariants on every record it sees.
#include <simdjson.h>

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "processor/domain/engine.hpp"
#include "processor/domain/state_store.hpp"

namespace revtrace::domain::testing {

namespace bj = boost::json;

inline constexpr Millis T0 = 1'744'000'000'000;  // 2025-04-07T04:26:40Z
inline constexpr Millis kMinute = 60'000;
inline constexpr Millis kDay = 24 * 3600 * 1000LL;
inline constexpr const char* kSite = "acme";

inline std::int64_t secs(Millis ms) {
  return ms / 1000;
}

inline std::filesystem::path testdata_dir() {
  return std::filesystem::path(__FILE__).parent_path() / "testdata" / "stripe";
}

inline bj::object fixture(const std::string& name) {
  std::ifstream in(testdata_dir() / name);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return bj::parse(ss.str()).as_object();
}

inline bj::object fixture_event_object(const std::string& name) {
  return fixture(name).at("data").at("object").as_object();
}

inline bj::value nullable(const std::string& s) {
  if (s.empty()) return nullptr;
  return bj::value(s);
}

inline bj::object metadata(std::initializer_list<std::pair<std::string, std::string>> kv) {
  bj::object m;
  for (const auto& [k, v] : kv) m[k] = v;
  return m;
}

// --- Stripe objects ------------------------------------------------------------------------------

struct CheckoutSpec {
  std::string id;
  std::int64_t amount = 0;
  std::string currency = "usd";
  std::string payment_status = "paid";
  std::string mode = "payment";
  std::string payment_intent, invoice, subscription, customer, email, client_reference_id,
      payment_link;
  bj::object metadata;
  Millis created = 0;
  bool livemode = false;
};

// From the captured basil checkout.session.completed (JPY) delivery.
inline bj::object checkout_session(const CheckoutSpec& s) {
  auto o = fixture_event_object("checkout.session.completed_api-2025-06-30.basil_jpy.json");
  o["id"] = s.id;
  o["amount_total"] = s.amount;
  o["amount_subtotal"] = s.amount;
  o["currency"] = s.currency;
  o["payment_status"] = s.payment_status;
  o["status"] = "complete";
  o["mode"] = s.mode;
  o["payment_intent"] = nullable(s.payment_intent);
  o["invoice"] = nullable(s.invoice);
  o["subscription"] = nullable(s.subscription);
  o["customer"] = nullable(s.customer);
  o["customer_details"].as_object()["email"] = nullable(s.email);
  o["client_reference_id"] = nullable(s.client_reference_id);
  o["payment_link"] = nullable(s.payment_link);
  o["metadata"] = s.metadata;
  o["created"] = secs(s.created);
  o["livemode"] = s.livemode;
  return o;
}

struct ChargeSpec {
  std::string id;
  std::int64_t amount = 0;
  std::string currency = "usd";
  std::int64_t refunded = 0;
  std::string payment_intent, customer, email;
  std::string invoice;  // pre-basil only (basil charges have no invoice field)
  bool basil = true;
  bool captured = true;
  bj::object metadata;
  Millis created = 0;
  bool livemode = false;
};

// From the API 2020-08-27 charge.succeeded delivery (old shape, with charge.invoice).
inline bj::object charge(const ChargeSpec& s) {
  auto o = fixture_event_object("charge.succeeded_api-2020-08-27.json");
  o["id"] = s.id;
  o["amount"] = s.amount;
  o["amount_captured"] = s.captured ? s.amount : 0;
  o["captured"] = s.captured;
  o["amount_refunded"] = s.refunded;
  o["refunded"] = s.refunded == s.amount && s.amount > 0;
  o["currency"] = s.currency;
  o["created"] = secs(s.created);
  o["payment_intent"] = nullable(s.payment_intent);
  o["customer"] = nullable(s.customer);
  o["billing_details"].as_object()["email"] = nullable(s.email);
  o["metadata"] = s.metadata;
  o["livemode"] = s.livemode;
  if (s.basil) {
    o.erase("invoice");
  } else {
    o["invoice"] = nullable(s.invoice);
  }
  return o;
}

struct PaymentIntentSpec {
  std::string id;
  std::int64_t amount = 0;
  std::string currency = "usd";
  std::string latest_charge, customer, email;
  std::string invoice;  // pre-basil only
  bool basil = true;
  bj::object metadata;
  Millis created = 0;
  bool livemode = false;
};

inline bj::object payment_intent(const PaymentIntentSpec& s) {
  auto o = fixture("object.payment_intent.json");
  o["id"] = s.id;
  o["amount"] = s.amount;
  o["amount_received"] = s.amount;
  o["currency"] = s.currency;
  o["status"] = "succeeded";
  o["latest_charge"] = nullable(s.latest_charge);
  o["customer"] = nullable(s.customer);
  o["receipt_email"] = nullable(s.email);
  o["metadata"] = s.metadata;
  o["created"] = secs(s.created);
  o["canceled_at"] = nullptr;
  o["last_payment_error"] = nullptr;
  o["livemode"] = s.livemode;
  if (!s.basil) o["invoice"] = nullable(s.invoice);
  return o;
}

struct InvoiceSpec {
  std::string id;
  std::int64_t amount = 0;
  std::string currency = "usd";
  std::string billing_reason = "subscription_create";
  std::string subscription, customer, email;
  std::string charge, payment_intent;  // pre-basil only
  bool basil = true;
  bj::object subscription_metadata;
  Millis paid_at = 0;
  bool livemode = false;
};

// Basil: from the 2025-03-31.basil delivery (subscription under parent.subscription_details).
// Pre-basil: from the 2025-02-24.acacia delivery (top-level subscription, charge, payment_intent).
inline bj::object invoice(const InvoiceSpec& s) {
  bj::object o;
  if (s.basil) {
    o = fixture_event_object("invoice.payment_succeeded_api-2025-03-31.basil.json");
    auto& details = o["parent"].as_object()["subscription_details"].as_object();
    details["subscription"] = nullable(s.subscription);
    details["metadata"] = s.subscription_metadata;
  } else {
    o = fixture_event_object("invoice.payment_succeeded_api-2025-02-24.acacia_trimmed.json");
    o["subscription"] = nullable(s.subscription);
    o["subscription_details"].as_object()["metadata"] = s.subscription_metadata;
    o["charge"] = nullable(s.charge);
    o["payment_intent"] = nullable(s.payment_intent);
  }
  o["id"] = s.id;
  o["amount_paid"] = s.amount;
  o["amount_due"] = s.amount;
  o["total"] = s.amount;
  o["subtotal"] = s.amount;
  o["currency"] = s.currency;
  o["billing_reason"] = s.billing_reason;
  o["customer"] = nullable(s.customer);
  o["customer_email"] = nullable(s.email);
  o["created"] = secs(s.paid_at);
  o["status_transitions"].as_object()["paid_at"] = secs(s.paid_at);
  o["livemode"] = s.livemode;
  return o;
}

// invoice_payment (basil and later); no fixture exists, so built from Stripe's documented shape.
inline bj::object invoice_payment(const std::string& id, const std::string& invoice_id,
                                  const std::string& payment_intent_id, std::int64_t amount,
                                  Millis paid_at, bool livemode = false) {
  bj::object payment{{"type", "payment_intent"}, {"payment_intent", payment_intent_id}};
  bj::object transitions{{"canceled_at", nullptr}, {"paid_at", secs(paid_at)}};
  return bj::object{{"id", id},
                    {"object", "invoice_payment"},
                    {"amount_paid", amount},
                    {"amount_requested", amount},
                    {"created", secs(paid_at)},
                    {"currency", "usd"},
                    {"invoice", invoice_id},
                    {"is_default", true},
                    {"livemode", livemode},
                    {"payment", payment},
                    {"status", "paid"},
                    {"status_transitions", transitions}};
}

inline bj::object subscription(const std::string& id, const std::string& customer,
                               const std::string& latest_invoice, bj::object md, Millis created,
                               bool livemode = false) {
  auto o = fixture("object.subscription.json");
  o["id"] = id;
  o["customer"] = customer;
  o["latest_invoice"] = nullable(latest_invoice);
  o["metadata"] = std::move(md);
  o["created"] = secs(created);
  o["status"] = "active";
  o["livemode"] = livemode;
  return o;
}

// --- records -------------------------------------------------------------------------------------

enum class Topic { web, redirect, stripe };

struct Input {
  Topic topic;
  std::string value;
  std::string label;
};

inline Input stripe_event(const std::string& event_id, const std::string& type, Millis created,
                          const bj::object& object, bool livemode = false,
                          const std::string& api_version = "2025-03-31.basil",
                          const std::string& site = kSite) {
  bj::object event{{"id", event_id},
                   {"object", "event"},
                   {"api_version", api_version},
                   {"created", secs(created)},
                   {"data", bj::object{{"object", object}}},
                   {"livemode", livemode},
                   {"pending_webhooks", 1},
                   {"request", bj::object{{"id", nullptr}, {"idempotency_key", nullptr}}},
                   {"type", type}};
  bj::object record{{"site_id", site},
                    {"source", "webhook"},
                    {"received_at", created + 1500},
                    {"event_id", event_id},
                    {"event_type", type},
                    {"livemode", livemode},
                    {"api_version", api_version},
                    {"created", secs(created)},
                    {"payload", bj::serialize(event)}};
  return {Topic::stripe, bj::serialize(record), type + " " + event_id};
}

inline Input pageview(const std::string& visitor, const std::string& event_id, Millis at,
                      const std::string& url, const std::string& referrer = "",
                      const std::string& session = "", const std::string& site = kSite) {
  bj::object o{
      {"event_id", event_id},
      {"type", "pageview"},
      {"site_id", site},
      {"visitor_id", visitor},
      {"occurred_at", at},
      {"received_at", at + 120},
      {"url", url},
      {"referrer", referrer},
      {"title", "Page"},
      {"device", bj::object{{"browser", "Firefox"}, {"os", "Linux"}, {"device_class", "desktop"}}},
      {"country", "DE"}};
  if (!session.empty()) o["session_id"] = session;
  return {Topic::web, bj::serialize(o), "pageview " + event_id};
}

inline Input identify(const std::string& visitor, const std::string& event_id, Millis at,
                      const std::string& email, const std::string& site = kSite) {
  bj::object o{{"event_id", event_id},
               {"type", "identify"},
               {"site_id", site},
               {"visitor_id", visitor},
               {"occurred_at", at},
               {"received_at", at + 80},
               {"url", "https://shop.example/signup"},
               {"email", email}};
  return {Topic::web, bj::serialize(o), "identify " + event_id};
}

inline Input redirect(const std::string& visitor, const std::string& event_id,
                      const std::string& cs, Millis at, const std::string& site = kSite) {
  bj::object o{{"event_id", event_id},      {"type", "checkout_redirect"},
               {"site_id", site},           {"visitor_id", visitor},
               {"checkout_session_id", cs}, {"url", "https://shop.example/thanks?session_id=" + cs},
               {"occurred_at", at},         {"received_at", at + 90}};
  return {Topic::redirect, bj::serialize(o), "redirect " + event_id};
}

// A custom event (the pixel's track call): it links its pixel session to the visitor.
inline Input custom_event(const std::string& visitor, const std::string& event_id, Millis at,
                          const std::string& name, const std::string& session = "",
                          const std::string& site = kSite) {
  bj::object o{{"event_id", event_id},
               {"type", "custom"},
               {"site_id", site},
               {"visitor_id", visitor},
               {"occurred_at", at},
               {"received_at", at + 60},
               {"url", "https://shop.example/app"},
               {"name", name},
               {"props", bj::object{}}};
  if (!session.empty()) o["session_id"] = session;
  return {Topic::web, bj::serialize(o), "custom " + event_id};
}

// --- running -------------------------------------------------------------------------------------

// Checks what tests/js/validate-records.mjs checks, on every record the engine emits.
inline void check_record_invariants(const std::string& value) {
  INFO(value);
  simdjson::dom::parser p;
  simdjson::dom::element r = p.parse(value);
  const std::int64_t amount = r["amount"];
  const std::int64_t refunded = r["refunded"];
  const std::int64_t net = r["net"];
  const std::int64_t paid_at = r["paid_at"];
  CHECK(net == amount - refunded);
  CHECK(refunded >= 0);
  CHECK(refunded <= amount);
  CHECK(amount > 0);
  CHECK(paid_at >= 1'000'000'000'000);
  CHECK(std::string_view(r["revenue_type"]) == "cash");
  simdjson::dom::array touches = r["touches"];
  for (auto t : touches) CHECK(std::int64_t(t["at"]) <= paid_at);
  const std::string_view method = r["method"];
  if (method == "unattributed") {
    CHECK(touches.size() == 0);
    CHECK(simdjson::dom::array(r["visitor_ids"]).size() == 0);
  } else {
    CHECK(touches.size() > 0);
  }
  simdjson::dom::object credits = r["credits"];
  CHECK(credits.size() == 6);
  for (auto [model, arr] : credits) {
    simdjson::dom::array a = arr;
    CHECK(a.size() == touches.size());
    std::int64_t sum = 0;
    for (auto c : a) {
      CHECK(std::int64_t(c) >= 0);
      sum += std::int64_t(c);
    }
    if (touches.size() > 0) CHECK(sum == amount);
  }
}

// The record with its revision set to 0 (for messages and for comparing content only).
inline std::string without_revision(const std::string& value) {
  const auto at = value.find("\"revision\":");
  if (at == std::string::npos) return value;
  const auto end = value.find(',', at);
  return value.substr(0, at) + "\"revision\":0" + value.substr(end);
}

inline std::int64_t revision_of(const std::string& value) {
  simdjson::dom::parser p;
  return p.parse(value)["revision"].get_int64().value();
}

// A consumer of the compacted output topic, checking the revision rules of ENGINE.md on every
// record it is shown: per key, revisions only grow; a (key, revision) pair never comes with two
// different contents (it may come twice with the same one: a re-run batch). It keeps the record
// of the highest revision per key; a tombstone drops the key.
struct Consumer {
  std::map<std::string, std::string> latest;
  std::map<std::string, std::int64_t> highest;                       // per key, ever
  std::map<std::pair<std::string, std::int64_t>, std::string> seen;  // (key, revision) -> value

  void apply(const OutputRecord& rec) {
    if (rec.tombstone) {
      CHECK(rec.value.empty());
      latest.erase(rec.key);
      return;
    }
    INFO(rec.key << ": " << rec.value);
    const auto revision = revision_of(rec.value);
    CHECK(revision >= 1);
    auto [it, fresh] = seen.emplace(std::pair{rec.key, revision}, rec.value);
    if (!fresh) CHECK(it->second == rec.value);  // one revision number, one content
    auto [h, first] = highest.emplace(rec.key, revision);
    if (!first) {
      CHECK(revision > h->second);  // revisions only grow for a key
      h->second = std::max(h->second, revision);
    }
    latest[rec.key] = rec.value;
  }
};

struct Harness {
  MemoryStateStore store;
  SiteSettings settings;
  AttributionEngine engine{store,
                           [this](std::string_view) -> const SiteSettings& { return settings; }};
  Consumer consumer;
  std::map<std::string, std::string>& latest = consumer.latest;  // key -> latest value
  std::vector<OutputRecord> emitted;
  int applied = 0, skipped = 0, invalid = 0;

  Harness() {
    settings.site_id = kSite;
    settings.rules.own_domains = {"shop.example"};
    settings.email_hash_key = "test-key";
  }
  // An engine over a copy of existing state (a restart, or a rebuild from a snapshot).
  explicit Harness(const MemoryStateStore& state) : Harness() { store = state; }

  // Feeds one record; with `suppress`, its output is dropped (a state rebuild: the processor
  // re-processes records whose output was already committed).
  Outcome feed(const Input& in, bool suppress = false) {
    Outcome o = in.topic == Topic::web        ? engine.on_web_event(in.value)
                : in.topic == Topic::redirect ? engine.on_checkout_redirect(in.value)
                                              : engine.on_stripe_event(in.value);
    INFO(in.label << " -> " << o.reason);
    CHECK(o.kind != Outcome::Kind::invalid);
    CHECK(o.forced_revisions == 0);
    switch (o.kind) {
      case Outcome::Kind::applied:
        ++applied;
        break;
      case Outcome::Kind::skipped:
        ++skipped;
        break;
      case Outcome::Kind::invalid:
        ++invalid;
        break;
    }
    for (const auto& rec : o.revenue) {
      if (!rec.tombstone) check_record_invariants(rec.value);
      if (suppress) continue;
      emitted.push_back(rec);
      consumer.apply(rec);
    }
    return o;
  }

  void feed(const std::vector<Input>& inputs, bool suppress = false) {
    for (const auto& in : inputs) (void)feed(in, suppress);
  }

  // Latest record per payment key, byte for byte (revision included).
  [[nodiscard]] std::map<std::string, std::string> ledger() const { return latest; }
};

// `web` keeps its order (the web-events log is ordered per site); `others` (Stripe events,
// redirects) are shuffled and interleaved with it at random positions.
inline std::vector<Input> interleave(const std::vector<Input>& web, std::vector<Input> others,
                                     std::mt19937& rng) {
  std::shuffle(others.begin(), others.end(), rng);
  std::vector<Input> out;
  std::size_t w = 0, o = 0;
  while (w < web.size() || o < others.size()) {
    const bool take_web =
        o == others.size() ||
        (w < web.size() && std::uniform_int_distribution<std::size_t>(
                               0, web.size() - w + others.size() - o - 1)(rng) < web.size() - w);
    out.push_back(take_web ? web[w++] : others[o++]);
  }
  return out;
}

inline std::map<std::string, std::string> run(const std::vector<Input>& inputs) {
  Harness h;
  h.feed(inputs);
  return h.ledger();
}

// Parsed view of one output record, for assertions.
struct View {
  simdjson::dom::parser parser;
  simdjson::dom::element r;
  explicit View(const std::string& value) : r(parser.parse(value)) {}
  std::string str(const char* f) { return std::string(std::string_view(r[f])); }
  std::int64_t num(const char* f) { return r[f]; }
  std::vector<std::int64_t> credits(const char* model) {
    std::vector<std::int64_t> out;
    for (auto c : simdjson::dom::array(r["credits"][model])) out.push_back(std::int64_t(c));
    return out;
  }
  std::size_t touches() { return simdjson::dom::array(r["touches"]).size(); }
  std::string touch(std::size_t i, const char* f) {
    auto v = simdjson::dom::array(r["touches"]).at(i)[f];
    if (v.is_null()) return "<null>";
    if (v.is_int64()) return std::to_string(std::int64_t(v));
    return std::string(std::string_view(v));
  }
  std::vector<std::string> visitors() {
    std::vector<std::string> out;
    for (auto v : simdjson::dom::array(r["visitor_ids"])) out.emplace_back(std::string_view(v));
    return out;
  }
  std::string stripe(const char* f) {
    auto v = r["stripe"][f];
    return v.is_null() ? std::string() : std::string(std::string_view(v));
  }
};

}  // namespace revtrace::domain::testing
