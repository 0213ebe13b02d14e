// Reading Stripe events: the captured/published fixtures byte for byte, both invoice shapes,
// configurable metadata keys, and the merge rules of observations.
#include "processor/domain/stripe_event.hpp"

#include <catch2/catch.hpp>
#include <random>

#include "processor/domain/engine_test_support.hpp"

using namespace revtrace::domain;
using namespace revtrace::domain::testing;

namespace {

const std::vector<std::string> kVisitorKeys{"revtrace_visitor_id", "attribu_visitor_id"};
const std::vector<std::string> kSessionKeys{"revtrace_session_id"};
const MetadataKeys kKeys{kVisitorKeys, kSessionKeys};

// A stripe-events record whose payload is the fixture file, byte for byte.
std::string record_of_file(const std::string& name) {
  std::ifstream in(testdata_dir() / name);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string body = ss.str();
  const auto event = bj::parse(body).as_object();
  bj::object record{{"site_id", "acme"},
                    {"source", "webhook"},
                    {"received_at", 1744000000000},
                    {"event_id", event.at("id")},
                    {"event_type", event.at("type")},
                    {"livemode", event.at("livemode")},
                    {"api_version", event.at("api_version")},
                    {"created", event.at("created")},
                    {"payload", body}};
  return bj::serialize(record);
}

StripeEvent parse_ok(const std::string& record) {
  auto p = parse_stripe_record(record, kKeys);
  INFO(p.reason);
  REQUIRE(p.kind == StripeEventParse::Kind::ok);
  return p.event;
}

}  // namespace

TEST_CASE("fixture: basil checkout.session.completed in JPY (zero-decimal)", "[stripe]") {
  const auto ev =
      parse_ok(record_of_file("checkout.session.completed_api-2025-06-30.basil_jpy.json"));
  CHECK(ev.event_id == "evt_1Rp92IE2YllEOQrty5bxSwY3");
  CHECK(ev.livemode == false);
  CHECK(ev.created == 1753539918000);
  const auto& o = ev.object;
  CHECK(o.kind == ObjectKind::checkout_session);
  CHECK(o.state == PayState::succeeded);
  CHECK(o.amount == 800);  // ¥800: whole yen, no scaling
  CHECK(o.currency == "jpy");
  CHECK(o.paid_at == 1753539918000);
  CHECK(o.created == 1753539888000);
  CHECK(o.payment_intent == "pi_3Rp92HE2YllEOQrt10Khp5XV");
  CHECK(o.customer == "cus_SkQpGfARLDMyiS");
  CHECK(o.mode == "payment");
  CHECK(ev.emails == std::vector<std::string>{"redacted@example.com"});
  CHECK(o.payment_ids() == std::vector<std::string>{o.id, "pi_3Rp92HE2YllEOQrt10Khp5XV"});
}

TEST_CASE("fixture: basil invoice (subscription under parent.subscription_details)", "[stripe]") {
  const auto ev = parse_ok(record_of_file("invoice.payment_succeeded_api-2025-03-31.basil.json"));
  const auto& o = ev.object;
  CHECK(o.kind == ObjectKind::invoice);
  CHECK(o.id == "in_PLACEHOLDER_0001");
  CHECK(o.state == PayState::succeeded);
  CHECK(o.amount == 190);
  CHECK(o.subscription == "sub_PLACEHOLDER");
  CHECK(o.billing_reason == "subscription_create");
  CHECK(o.paid_at == 1743500000000);
  CHECK(o.charge.empty());
  CHECK(o.payment_intent.empty());
  CHECK(ev.emails == std::vector<std::string>{"buyer@example.com"});
}

TEST_CASE("fixture: pre-basil invoice (top-level subscription, charge, payment_intent)",
          "[stripe]") {
  const auto ev =
      parse_ok(record_of_file("invoice.payment_succeeded_api-2025-02-24.acacia_trimmed.json"));
  const auto& o = ev.object;
  CHECK(o.id == "in_PLACEHOLDER_0002");
  CHECK(o.amount == 95);
  CHECK(o.subscription == "sub_PLACEHOLDER");
  CHECK(o.charge == "ch_PLACEHOLDER");
  CHECK(o.payment_intent == "pi_PLACEHOLDER");
  CHECK(o.billing_reason == "subscription_cycle");
  CHECK(o.payment_ids() ==
        std::vector<std::string>{"in_PLACEHOLDER_0002", "pi_PLACEHOLDER", "ch_PLACEHOLDER"});
}

TEST_CASE("fixture: old-API charge.succeeded, authorised but not captured", "[stripe]") {
  const auto ev = parse_ok(record_of_file("charge.succeeded_api-2020-08-27.json"));
  const auto& o = ev.object;
  CHECK(o.kind == ObjectKind::charge);
  CHECK(o.state == PayState::pending);  // captured: false, amount_captured: 0 — no money moved yet
  CHECK(o.amount == 0);
  CHECK(o.created == 1645652691000);
  CHECK(o.payment_intent.empty());
  CHECK(o.payment_ids() == std::vector<std::string>{"ch_3KWSdjJKEym2H9Vg0qAid6Vb"});
}

TEST_CASE("metadata: configured visitor and session keys, subscription snapshots, campaign",
          "[stripe]") {
  InvoiceSpec inv;
  inv.id = "in_1";
  inv.amount = 100;
  inv.subscription = "sub_1";
  inv.subscription_metadata = metadata(
      {{"attribu_visitor_id", "v-old-tool"}, {"revtrace_session_id", "s-1"}, {"other", "x"}});
  inv.paid_at = T0;
  auto ev = parse_ok(stripe_event("evt_i", "invoice.paid", T0, invoice(inv)).value);
  CHECK(ev.object.visitor_ids == std::set<std::string>{"v-old-tool"});
  CHECK(ev.object.session_ids == std::set<std::string>{"s-1"});

  CheckoutSpec cs;
  cs.id = "cs_test_pl";
  cs.amount = 500;
  cs.payment_intent = "pi_pl";
  cs.payment_link = "plink_9";
  cs.metadata = metadata(
      {{"utm_campaign", "by-hand"}, {"revtrace_source", "podcast"}, {"utm_source", "ignored"}});
  ev =
      parse_ok(stripe_event("evt_c", "checkout.session.completed", T0, checkout_session(cs)).value);
  CHECK(ev.object.campaign ==
        std::map<std::string, std::string>{{"campaign", "by-hand"}, {"source", "podcast"}});
}

TEST_CASE("emails are trimmed and lower-cased before hashing", "[stripe]") {
  CHECK(normalise_email("  Jane.Doe@Example.COM\t") == "jane.doe@example.com");
  CHECK(normalise_email("   ").empty());
}

TEST_CASE("observation merge is commutative, associative and idempotent", "[stripe][merge]") {
  std::mt19937 rng(7);
  auto pick = [&](std::initializer_list<const char*> xs) {
    auto it = xs.begin();
    std::advance(it, std::uniform_int_distribution<std::size_t>(0, xs.size() - 1)(rng));
    return std::string(*it);
  };
  for (int round = 0; round < 200; ++round) {
    std::vector<Observation> snapshots;
    for (int i = 0; i < 5; ++i) {
      Observation o;
      o.kind = ObjectKind::charge;
      o.id = "ch_1";
      o.state = static_cast<PayState>(std::uniform_int_distribution<int>(0, 3)(rng));
      o.amount = std::uniform_int_distribution<std::int64_t>(0, 3)(rng) * 100;
      o.amount_refunded = std::uniform_int_distribution<std::int64_t>(0, 3)(rng) * 10;
      o.paid_at = std::uniform_int_distribution<std::int64_t>(0, 2)(rng) * 1000;
      o.currency = pick({"", "usd", "eur"});
      o.payment_intent = pick({"", "pi_1", "pi_2"});
      o.customer = pick({"", "cus_1"});
      if (rng() % 2) o.visitor_ids.insert(pick({"a", "b", "c"}));
      if (rng() % 3 == 0) o.email_hashes.insert(pick({"h1", "h2"}));
      if (rng() % 4 == 0) o.campaign[pick({"source", "campaign"})] = pick({"x", "y"});
      snapshots.push_back(o);
    }
    Observation forward;
    for (const auto& s : snapshots) merge(forward, s);
    for (int shuffle = 0; shuffle < 5; ++shuffle) {
      auto order = snapshots;
      order.push_back(snapshots[rng() % snapshots.size()]);  // a duplicate
      std::shuffle(order.begin(), order.end(), rng);
      Observation other;
      for (const auto& s : order) merge(other, s);
      REQUIRE(other == forward);
    }
    // Encoding round-trips.
    codec::Writer w;
    encode(w, forward);
    codec::Reader r(w.bytes());
    CHECK(decode_observation(r) == forward);
    CHECK(r.ok());
    CHECK(r.done());
  }
}
