// AttributionEngine: the first slice, money scenarios under many arrival orders, evidence order
// and upgrades, determinism, rejection reasons.
#include <catch2/catch.hpp>

#include "processor/domain/engine_test_support.hpp"

using namespace revtrace::domain;
using namespace revtrace::domain::testing;

namespace {

const std::string V = "01JQXA6T2M8Y4K7B3N9C5D1F0G";

std::vector<Input> newsletter_visit(const std::string& visitor, Millis at,
                                    const std::string& prefix) {
  return {
      pageview(visitor, prefix + "-pv1", at,
               "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring"),
      pageview(visitor, prefix + "-pv2", at + 5000, "https://shop.example/pricing",
               "https://shop.example/")};
}

Input one_off_checkout(const std::string& evt, const std::string& cs, const std::string& pi,
                       std::int64_t amount, Millis at, bj::object md = {}, std::string email = "",
                       std::string reference = "", bool livemode = false) {
  CheckoutSpec s;
  s.id = cs;
  s.amount = amount;
  s.payment_intent = pi;
  s.metadata = std::move(md);
  s.email = std::move(email);
  s.client_reference_id = std::move(reference);
  s.created = at - 2 * kMinute;
  s.livemode = livemode;
  return stripe_event(evt, "checkout.session.completed", at, checkout_session(s), livemode);
}

// Runs `inputs` in `rounds` seeded interleavings (web order kept, everything else shuffled) and
// checks every run ends with the same ledger; returns it.
std::map<std::string, std::string> same_ledger_in_every_order(const std::vector<Input>& web,
                                                              const std::vector<Input>& others,
                                                              int rounds = 40) {
  std::map<std::string, std::string> first;
  for (int seed = 0; seed < rounds; ++seed) {
    std::mt19937 rng(static_cast<unsigned>(seed) * 7919u + 17u);
    const auto inputs = interleave(web, others, rng);
    auto ledger = run(inputs);
    if (seed == 0) {
      first = ledger;
    } else {
      INFO("seed " << seed);
      REQUIRE(ledger == first);
    }
  }
  return first;
}

}  // namespace

TEST_CASE("first slice: newsletter pageview, then a paid checkout naming the visitor",
          "[engine][slice]") {
  Harness h;
  h.feed(newsletter_visit(V, T0, "s"));
  CHECK(h.emitted.empty());
  const auto out =
      h.feed(one_off_checkout("evt_1", "cs_test_1", "pi_1", 4900, T0 + 30'000,
                              metadata({{"revtrace_visitor_id", V}}), "buyer@example.com"));
  REQUIRE(out.kind == Outcome::Kind::applied);
  REQUIRE(out.revenue.size() == 1);
  CHECK(out.revenue[0].key == "acme/pi_1");
  View r(out.revenue[0].value);
  // Revision = the size of the payment's basis: its one observation, visitor V, V's one session.
  CHECK(r.num("revision") == 3);
  CHECK(r.num("amount") == 4900);
  CHECK(r.str("currency") == "usd");
  CHECK(r.num("net") == 4900);
  CHECK(r.str("method") == "metadata");
  CHECK(r.str("payment_key") == "pi_1");
  CHECK(r.stripe("checkout_session") == "cs_test_1");
  CHECK(r.visitors() == std::vector<std::string>{V});
  REQUIRE(r.touches() == 1);
  CHECK(r.touch(0, "source") == "newsletter");
  CHECK(r.touch(0, "medium") == "email");
  CHECK(r.touch(0, "campaign") == "spring");
  CHECK(r.touch(0, "landing_path") == "/");
  CHECK(r.touch(0, "at") == std::to_string(T0));
  CHECK(r.credits("first_touch") == std::vector<std::int64_t>{4900});
  CHECK(r.str("email_hash").size() == 64);
  // The raw email is never stored.
  for (const auto& [k, v] : h.store.entries()) {
    CHECK(k.find("buyer@example.com") == std::string::npos);
    CHECK(v.find("buyer@example.com") == std::string::npos);
  }
}

TEST_CASE("output record: exact bytes, field order and nulls", "[engine][contract]") {
  Harness h;
  h.feed(newsletter_visit(V, T0, "s"));
  const auto out = h.feed(one_off_checkout("evt_1", "cs_test_1", "pi_1", 4900, T0 + 30'000,
                                           metadata({{"revtrace_visitor_id", V}})));
  REQUIRE(out.revenue.size() == 1);
  const std::string& v = out.revenue[0].value;
  CHECK(v.starts_with(
      R"({"site_id":"acme","payment_key":"pi_1","revision":3,"livemode":false,"revenue_type":"cash","amount":4900,"currency":"usd","refunded":0,"net":4900,"paid_at":1744000030000,"method":"metadata","stripe":{"checkout_session":"cs_test_1","payment_intent":"pi_1","charge":null,"invoice":null,"subscription":null,"customer":null,"payment_link":null},"visitor_ids":[")" +
      V + R"("],"email_hash":)"));
  CHECK(v.find(R"("touches":[{"at":1744000000000,"channel":)") != std::string::npos);
  CHECK(
      v.find(
          R"(,"source":"newsletter","medium":"email","campaign":"spring","term":null,"content":null,"click_id":null,"referrer":null,"landing_path":"/","browser":"Firefox","os":"Linux","device_class":"desktop","country":"DE"}])") !=
      std::string::npos);
  CHECK(v.ends_with(
      R"("credits":{"first_touch":[4900],"last_touch":[4900],"last_non_direct":[4900],"linear":[4900],"position_based":[4900],"time_decay":[4900]}})"));
}

// --- money: every payment counted once, whatever subset, order and duplication ------------------

namespace {

Input charge_event(const std::string& evt, const std::string& type, ChargeSpec s, Millis at) {
  return stripe_event(evt, type, at, charge(s), s.livemode,
                      s.basil ? "2025-03-31.basil" : "2025-02-24.acacia");
}

ChargeSpec charge_spec(const std::string& id, const std::string& pi, std::int64_t amount,
                       Millis created, std::int64_t refunded = 0) {
  ChargeSpec s;
  s.id = id;
  s.payment_intent = pi;
  s.amount = amount;
  s.created = created;
  s.refunded = refunded;
  return s;
}

// A Payment Link's checkout session (payment mode, paid).
CheckoutSpec link_session(const std::string& id, std::int64_t amount, const std::string& pi,
                          const std::string& link, Millis created) {
  CheckoutSpec s;
  s.id = id;
  s.amount = amount;
  s.payment_intent = pi;
  s.payment_link = link;
  s.created = created;
  return s;
}

Input pi_event(const std::string& evt, const std::string& pi, const std::string& ch,
               std::int64_t amount, Millis at) {
  PaymentIntentSpec s;
  s.id = pi;
  s.amount = amount;
  s.latest_charge = ch;
  s.created = at - kMinute;
  return stripe_event(evt, "payment_intent.succeeded", at, payment_intent(s));
}

// The inputs named by `labels` (every input whose label starts with one of them).
std::vector<Input> pick(const std::vector<Input>& all,
                        std::initializer_list<std::string> prefixes) {
  std::vector<Input> out;
  for (const auto& in : all) {
    for (const auto& p : prefixes) {
      if (in.label.starts_with(p)) {
        out.push_back(in);
        break;
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("one-off checkout: any subset of its events, any order, duplicates -> one payment",
          "[engine][money]") {
  const auto web = newsletter_visit(V, T0, "v");
  const Millis paid = T0 + kMinute;
  std::vector<Input> all = {
      one_off_checkout("evt_cs", "cs_test_A", "pi_A", 4900, paid,
                       metadata({{"revtrace_visitor_id", V}})),
      one_off_checkout("evt_cs", "cs_test_A", "pi_A", 4900, paid,
                       metadata({{"revtrace_visitor_id", V}})),
      charge_event("evt_ch", "charge.succeeded", charge_spec("ch_A", "pi_A", 4900, paid - 5000),
                   paid - 4000),
      // Stripe's "two events for one change": same object and type, another event id.
      charge_event("evt_ch_twin", "charge.succeeded",
                   charge_spec("ch_A", "pi_A", 4900, paid - 5000), paid - 3000),
      pi_event("evt_pi", "pi_A", "ch_A", 4900, paid - 2000),
  };
  for (auto& in : all) in.label = in.label.substr(0, in.label.find(' '));  // label = event type

  struct Case {
    std::initializer_list<std::string> types;
    const char* method;
    Millis paid_at;
  };
  const Case cases[] = {
      {{"checkout.session.completed", "charge.succeeded", "payment_intent.succeeded"},
       "metadata",
       paid - 5000},
      {{"checkout.session.completed"}, "metadata", paid},
      {{"charge.succeeded"}, "unattributed", paid - 5000},
      {{"payment_intent.succeeded"}, "unattributed", paid - 2000},
      {{"checkout.session.completed", "charge.succeeded"}, "metadata", paid - 5000},
      {{"charge.succeeded", "payment_intent.succeeded"}, "unattributed", paid - 5000},
  };
  for (const auto& c : cases) {
    const auto subset = pick(all, c.types);
    INFO("subset of " << subset.size() << " events, first " << subset.front().label);
    auto ledger = same_ledger_in_every_order(web, subset);
    REQUIRE(ledger.size() == 1);  // counted once
    REQUIRE(ledger.begin()->first == "acme/pi_A");
    View r(ledger.begin()->second);
    CHECK(r.num("amount") == 4900);
    CHECK(r.num("net") == 4900);
    CHECK(r.str("method") == c.method);
    CHECK(r.num("paid_at") == c.paid_at);
  }
}

TEST_CASE("refunds: cumulative, idempotent, in any order", "[engine][money]") {
  const Millis paid = T0 + kMinute;
  const auto web = newsletter_visit(V, T0, "v");
  std::vector<Input> all = {
      one_off_checkout("evt_cs", "cs_test_R", "pi_R", 4900, paid,
                       metadata({{"revtrace_visitor_id", V}})),
      charge_event("evt_ch", "charge.succeeded", charge_spec("ch_R", "pi_R", 4900, paid - 5000),
                   paid - 4000),
      charge_event("evt_rf1", "charge.refunded",
                   charge_spec("ch_R", "pi_R", 4900, paid - 5000, 1000), paid + kDay),
      charge_event("evt_rf1", "charge.refunded",
                   charge_spec("ch_R", "pi_R", 4900, paid - 5000, 1000), paid + kDay),
      charge_event("evt_rf2", "charge.refunded",
                   charge_spec("ch_R", "pi_R", 4900, paid - 5000, 4900), paid + 2 * kDay),
      charge_event("evt_rf2_twin", "charge.refunded",
                   charge_spec("ch_R", "pi_R", 4900, paid - 5000, 4900), paid + 2 * kDay),
  };
  SECTION("partial then full, repeated, twins: refunded = last cumulative amount") {
    auto ledger = same_ledger_in_every_order(web, all);
    REQUIRE(ledger.size() == 1);
    View r(ledger.at("acme/pi_R"));
    CHECK(r.num("amount") == 4900);
    CHECK(r.num("refunded") == 4900);
    CHECK(r.num("net") == 0);
    CHECK(r.str("method") == "metadata");  // the refund keeps the payment's attribution
    CHECK(r.credits("first_touch") == std::vector<std::int64_t>{4900});  // credits are gross
  }
  SECTION("partial refund only (and refund seen before the payment)") {
    auto ledger =
        same_ledger_in_every_order(web, pick(all, {"checkout", "charge.refunded evt_rf1"}));
    REQUIRE(ledger.size() == 1);
    View r(ledger.at("acme/pi_R"));
    CHECK(r.num("refunded") == 1000);
    CHECK(r.num("net") == 3900);
  }
  SECTION("a repeated refund event is skipped and emits nothing") {
    Harness h;
    h.feed(web);
    h.feed(all[0]);
    h.feed(all[2]);
    const auto again = h.feed(all[3]);
    CHECK(again.kind == Outcome::Kind::skipped);
    CHECK(again.revenue.empty());
    const auto twin =
        h.feed(charge_event("evt_rf1_twin", "charge.refunded",
                            charge_spec("ch_R", "pi_R", 4900, paid - 5000, 1000), paid + kDay));
    CHECK(twin.kind == Outcome::Kind::skipped);
    CHECK(twin.revenue.empty());
    CHECK(View(h.latest.at("acme/pi_R")).num("refunded") == 1000);
  }
}

TEST_CASE("direct charge without a payment intent (old API shape)", "[engine][money]") {
  const Millis paid = T0 + kMinute;
  const auto web = newsletter_visit(V, T0, "v");
  ChargeSpec s = charge_spec("ch_legacy", "", 2500, paid);
  s.basil = false;
  s.metadata = metadata({{"revtrace_visitor_id", V}});
  ChargeSpec refunded = s;
  refunded.refunded = 500;
  std::vector<Input> all = {
      charge_event("evt_legacy", "charge.succeeded", s, paid),
      charge_event("evt_legacy_rf", "charge.refunded", refunded, paid + kDay),
      charge_event("evt_legacy", "charge.succeeded", s, paid),
  };
  auto ledger = same_ledger_in_every_order(web, all);
  REQUIRE(ledger.size() == 1);
  View r(ledger.at("acme/ch_legacy"));
  CHECK(r.num("amount") == 2500);
  CHECK(r.num("refunded") == 500);
  CHECK(r.str("method") == "metadata");
  CHECK(r.stripe("payment_intent").empty());
  CHECK(r.stripe("charge") == "ch_legacy");

  SECTION("an uncaptured authorisation is not revenue") {
    ChargeSpec auth = charge_spec("ch_auth", "", 700, paid);
    auth.captured = false;
    Harness h;
    const auto out = h.feed(charge_event("evt_auth", "charge.succeeded", auth, paid));
    CHECK(out.kind == Outcome::Kind::applied);
    CHECK(out.revenue.empty());
  }
}

TEST_CASE("checkout with a delayed method: unpaid is not revenue until it succeeds",
          "[engine][money]") {
  const Millis done = T0 + kMinute;
  const auto web = newsletter_visit(V, T0, "v");
  CheckoutSpec unpaid;
  unpaid.id = "cs_test_U";
  unpaid.amount = 12000;
  unpaid.currency = "eur";
  unpaid.payment_intent = "pi_U";
  unpaid.payment_status = "unpaid";
  unpaid.metadata = metadata({{"revtrace_visitor_id", V}});
  unpaid.created = done - kMinute;
  CheckoutSpec paid = unpaid;
  paid.payment_status = "paid";
  const Input completed =
      stripe_event("evt_u1", "checkout.session.completed", done, checkout_session(unpaid));
  const Input succeeded = stripe_event("evt_u2", "checkout.session.async_payment_succeeded",
                                       done + 3 * kDay, checkout_session(paid));
  const Input failed = stripe_event("evt_u3", "checkout.session.async_payment_failed",
                                    done + 3 * kDay, checkout_session(unpaid));
  ChargeSpec c = charge_spec("ch_U", "pi_U", 12000, done + 2 * kDay);
  c.currency = "eur";
  const Input charged = charge_event("evt_u4", "charge.succeeded", c, done + 2 * kDay);

  SECTION("unpaid alone: nothing") {
    Harness h;
    h.feed(web);
    const auto out = h.feed(completed);
    CHECK(out.kind == Outcome::Kind::applied);
    CHECK(out.revenue.empty());
  }
  SECTION("unpaid + async success, either order: one payment, paid at the success") {
    auto ledger = same_ledger_in_every_order(web, {completed, succeeded, succeeded});
    REQUIRE(ledger.size() == 1);
    View r(ledger.at("acme/pi_U"));
    CHECK(r.num("amount") == 12000);
    CHECK(r.str("currency") == "eur");
    CHECK(r.num("paid_at") == done + 3 * kDay);
    CHECK(r.str("method") == "metadata");
  }
  SECTION("unpaid + the charge: revenue") {
    auto ledger = same_ledger_in_every_order(web, {completed, charged});
    REQUIRE(ledger.size() == 1);
    CHECK(View(ledger.at("acme/pi_U")).num("amount") == 12000);
  }
  SECTION("unpaid + async failure: nothing") {
    auto ledger = same_ledger_in_every_order(web, {completed, failed});
    CHECK(ledger.empty());
  }
}

TEST_CASE("test mode is kept apart from live", "[engine][money]") {
  const Millis paid = T0 + kMinute;
  const auto web = newsletter_visit(V, T0, "v");
  // A test payment names V and the buyer's email; a live payment with the same email has no
  // other evidence. The test-mode link must not attribute the live payment.
  const Input test_payment =
      one_off_checkout("evt_t", "cs_test_T", "pi_T", 100, paid,
                       metadata({{"revtrace_visitor_id", V}}), "same@example.com", "", false);
  const Input live_payment = one_off_checkout("evt_l", "cs_live_L", "pi_L", 5000, paid + kMinute,
                                              {}, "same@example.com", "", true);
  auto ledger = same_ledger_in_every_order(web, {test_payment, live_payment});
  REQUIRE(ledger.size() == 2);
  View t(ledger.at("acme/pi_T"));
  View l(ledger.at("acme/pi_L"));
  CHECK(t.r["livemode"].get_bool().value() == false);
  CHECK(l.r["livemode"].get_bool().value() == true);
  CHECK(t.str("method") == "metadata");
  CHECK(l.str("method") == "unattributed");
  CHECK(t.str("email_hash") == l.str("email_hash"));  // same person, same keyed hash

  SECTION("a web identify links the email in both modes") {
    auto with_identify = web;
    with_identify.push_back(identify(V, "v-id", T0 + 10'000, " Same@Example.com "));
    auto ledger2 = same_ledger_in_every_order(with_identify, {test_payment, live_payment});
    CHECK(View(ledger2.at("acme/pi_L")).str("method") == "identity_graph");
  }
}

// --- subscriptions and renewals -----------------------------------------------------------------

namespace {

struct SubscriptionStory {
  std::vector<Input> events;  // labelled "<type> <event id>"
};

// A subscription bought through Checkout (metadata names V), its first invoice and two renewals,
// in the pre-basil shapes (invoice.charge/payment_intent, charge.invoice, payment_intent.invoice).
SubscriptionStory pre_basil_subscription(bool livemode = false) {
  const Millis paid = T0 + kMinute;
  const std::string api = "2025-02-24.acacia";
  SubscriptionStory s;
  CheckoutSpec cs;
  cs.id = "cs_test_S";
  cs.mode = "subscription";
  cs.amount = 1900;
  cs.subscription = "sub_S";
  cs.invoice = "in_S1";
  cs.customer = "cus_S";
  cs.email = "sub@example.com";
  cs.metadata = metadata({{"revtrace_visitor_id", V}});
  cs.created = paid - kMinute;
  cs.livemode = livemode;
  s.events.push_back(stripe_event("evt_s_cs", "checkout.session.completed", paid,
                                  checkout_session(cs), livemode, api));
  s.events.push_back(
      stripe_event("evt_s_sub", "customer.subscription.created", paid - 2000,
                   subscription("sub_S", "cus_S", "in_S1", metadata({{"revtrace_visitor_id", V}}),
                                paid - 2000, livemode),
                   livemode, api));
  for (int n = 1; n <= 3; ++n) {
    const std::string k = std::to_string(n);
    const Millis at = paid - 1000 + (n - 1) * 30 * kDay;
    InvoiceSpec inv;
    inv.id = "in_S" + k;
    inv.basil = false;
    inv.amount = 1900;
    inv.billing_reason = n == 1 ? "subscription_create" : "subscription_cycle";
    inv.subscription = "sub_S";
    inv.customer = "cus_S";
    inv.email = "sub@example.com";
    inv.charge = "ch_S" + k;
    inv.payment_intent = "pi_S" + k;
    inv.subscription_metadata = metadata({{"revtrace_visitor_id", V}});
    inv.paid_at = at;
    inv.livemode = livemode;
    s.events.push_back(
        stripe_event("evt_s_inv" + k, "invoice.paid", at, invoice(inv), livemode, api));
    s.events.push_back(stripe_event("evt_s_ips" + k, "invoice.payment_succeeded", at, invoice(inv),
                                    livemode, api));
    ChargeSpec ch = charge_spec("ch_S" + k, "pi_S" + k, 1900, at - 1000);
    ch.basil = false;
    ch.invoice = "in_S" + k;
    ch.customer = "cus_S";
    ch.livemode = livemode;
    s.events.push_back(charge_event("evt_s_ch" + k, "charge.succeeded", ch, at - 1000));
    s.events.back().value =
        stripe_event("evt_s_ch" + k, "charge.succeeded", at - 1000, charge(ch), livemode, api)
            .value;
    PaymentIntentSpec pi;
    pi.id = "pi_S" + k;
    pi.amount = 1900;
    pi.latest_charge = "ch_S" + k;
    pi.customer = "cus_S";
    pi.basil = false;
    pi.invoice = "in_S" + k;
    pi.created = at - 2000;
    pi.livemode = livemode;
    s.events.push_back(stripe_event("evt_s_pi" + k, "payment_intent.succeeded", at,
                                    payment_intent(pi), livemode, api));
  }
  return s;
}

// The same story in basil shapes: no invoice link on charges and payment intents; subscription
// under invoice.parent; invoice_payment.paid links each invoice to its payment intent.
SubscriptionStory basil_subscription() {
  const Millis paid = T0 + kMinute;
  SubscriptionStory s;
  CheckoutSpec cs;
  cs.id = "cs_test_B";
  cs.mode = "subscription";
  cs.amount = 2900;
  cs.subscription = "sub_B";
  cs.invoice = "in_B1";
  cs.customer = "cus_B";
  cs.email = "basil@example.com";
  cs.metadata = metadata({{"revtrace_visitor_id", V}});
  cs.created = paid - kMinute;
  s.events.push_back(
      stripe_event("evt_b_cs", "checkout.session.completed", paid, checkout_session(cs)));
  s.events.push_back(
      stripe_event("evt_b_sub", "customer.subscription.created", paid - 2000,
                   subscription("sub_B", "cus_B", "in_B1", metadata({{"revtrace_visitor_id", V}}),
                                paid - 2000)));
  for (int n = 1; n <= 3; ++n) {
    const std::string k = std::to_string(n);
    const Millis at = paid - 1000 + (n - 1) * 30 * kDay;
    InvoiceSpec inv;
    inv.id = "in_B" + k;
    inv.amount = 2900;
    inv.billing_reason = n == 1 ? "subscription_create" : "subscription_cycle";
    inv.subscription = "sub_B";
    inv.customer = "cus_B";
    inv.email = "basil@example.com";
    inv.subscription_metadata = metadata({{"revtrace_visitor_id", V}});
    inv.paid_at = at;
    s.events.push_back(stripe_event("evt_b_inv" + k, "invoice.paid", at, invoice(inv)));
    s.events.push_back(
        stripe_event("evt_b_inpay" + k, "invoice_payment.paid", at,
                     invoice_payment("inpay_B" + k, "in_B" + k, "pi_B" + k, 2900, at)));
    ChargeSpec ch = charge_spec("ch_B" + k, "pi_B" + k, 2900, at - 1000);
    ch.customer = "cus_B";
    s.events.push_back(charge_event("evt_b_ch" + k, "charge.succeeded", ch, at - 1000));
    s.events.push_back(pi_event("evt_b_pi" + k, "pi_B" + k, "ch_B" + k, 2900, at));
  }
  return s;
}

void check_subscription_ledger(const std::map<std::string, std::string>& ledger,
                               const std::string& prefix, std::int64_t amount,
                               std::size_t invoices) {
  REQUIRE(ledger.size() == invoices);  // one payment per invoice, none twice
  View first(ledger.at("acme/in_" + prefix + "1"));
  CHECK(first.num("amount") == amount);
  CHECK(first.str("method") == "metadata");
  CHECK(first.stripe("subscription") == "sub_" + prefix);
  REQUIRE(first.touches() == 1);
  CHECK(first.touch(0, "source") == "newsletter");
  for (std::size_t n = 2; n <= invoices; ++n) {
    View renewal(ledger.at("acme/in_" + prefix + std::to_string(n)));
    CHECK(renewal.num("amount") == amount);
    CHECK(renewal.str("method") == "inherited");
    CHECK(renewal.visitors() == first.visitors());
    REQUIRE(renewal.touches() == first.touches());
    CHECK(renewal.touch(0, "at") == first.touch(0, "at"));
    CHECK(renewal.credits("first_touch") == first.credits("first_touch"));
    CHECK(renewal.num("paid_at") > first.num("paid_at"));
  }
}

}  // namespace

TEST_CASE("subscription, pre-basil shapes: first payment and renewals, each counted once",
          "[engine][money][subscription]") {
  const auto web = newsletter_visit(V, T0, "v");
  const auto story = pre_basil_subscription();
  SECTION("every event type") {
    auto all = story.events;
    all.push_back(story.events[2]);  // a redelivery
    check_subscription_ledger(same_ledger_in_every_order(web, all), "S", 1900, 3);
  }
  SECTION("invoices only") {
    check_subscription_ledger(same_ledger_in_every_order(web, pick(story.events, {"invoice.paid"})),
                              "S", 1900, 3);
  }
  SECTION("checkout + charges + payment intents (no invoice events)") {
    const auto subset = pick(story.events, {"checkout", "charge", "payment_intent"});
    auto ledger = same_ledger_in_every_order(web, subset);
    REQUIRE(ledger.size() == 3);  // keyed by the invoice each pre-basil charge names
    CHECK(View(ledger.at("acme/in_S1")).str("method") == "metadata");
  }
}

TEST_CASE("subscription, basil shapes: invoice_payment.paid joins charges to invoices",
          "[engine][money][subscription]") {
  const auto web = newsletter_visit(V, T0, "v");
  const auto story = basil_subscription();
  SECTION("every event type, any order") {
    check_subscription_ledger(same_ledger_in_every_order(web, story.events), "B", 2900, 3);
  }
  SECTION("every event type with redeliveries and Stripe's two events for one change") {
    auto all = story.events;
    all.push_back(story.events[0]);  // the checkout session, delivered again
    for (const auto& e : pick(story.events, {"invoice.paid"})) {
      // invoice.payment_succeeded: another event id, the same invoice as invoice.paid
      auto twin = e;
      for (const auto& [from, to] : {std::pair<std::string, std::string>{"evt_b_inv", "evt_b_ips"},
                                     {"invoice.paid", "invoice.payment_succeeded"}}) {
        for (auto at = twin.value.find(from); at != std::string::npos;
             at = twin.value.find(from, at + to.size())) {
          twin.value.replace(at, from.size(), to);
        }
      }
      twin.label = "invoice.payment_succeeded twin";
      all.push_back(twin);
    }
    check_subscription_ledger(same_ledger_in_every_order(web, all), "B", 2900, 3);
  }
  SECTION("invoices only") {
    check_subscription_ledger(same_ledger_in_every_order(web, pick(story.events, {"invoice.paid"})),
                              "B", 2900, 3);
  }
  SECTION("invoices and their invoice payments (no checkout, charge or payment intent events)") {
    check_subscription_ledger(
        same_ledger_in_every_order(web, pick(story.events, {"invoice.paid", "invoice_payment"})),
        "B", 2900, 3);
  }
  SECTION("checkout + invoices") {
    check_subscription_ledger(
        same_ledger_in_every_order(web, pick(story.events, {"checkout", "invoice.paid"})), "B",
        2900, 3);
  }
  SECTION("only charges and payment intents: basil names no invoice on them") {
    // Nothing ties them to the subscription, so each is a payment of its own, each counted once.
    const auto ledger =
        same_ledger_in_every_order(web, pick(story.events, {"charge", "payment_intent"}));
    REQUIRE(ledger.size() == 3);
    std::int64_t total = 0;
    for (const auto& [key, value] : ledger) total += View(value).num("amount");
    CHECK(total == 3 * 2900);
  }
  SECTION("charge before its invoice link: the payment-intent key is retired, not double counted") {
    Harness h;
    h.feed(web);
    h.feed(pick(story.events, {"charge.succeeded evt_b_ch1"}));
    CHECK(h.latest.count("acme/pi_B1") == 1);  // seen alone, it is a payment of its own
    h.feed(pick(story.events, {"invoice.paid evt_b_inv1"}));
    CHECK(h.latest.size() == 2);
    const auto link = h.feed(pick(story.events, {"invoice_payment.paid evt_b_inpay1"})[0]);
    bool tombstone = false;
    for (const auto& r : link.revenue) tombstone |= r.tombstone && r.key == "acme/pi_B1";
    CHECK(tombstone);
    REQUIRE(h.latest.size() == 1);
    View r(h.latest.at("acme/in_B1"));
    CHECK(r.stripe("payment_intent") == "pi_B1");
    CHECK(r.stripe("charge") == "ch_B1");
    CHECK(r.num("amount") == 2900);
  }
}

TEST_CASE("renewals inherit even when the first payment's evidence arrives last",
          "[engine][evidence][subscription]") {
  const auto web = newsletter_visit(V, T0, "v");
  auto story = pre_basil_subscription();
  // Renewal invoices without the subscription metadata snapshot: only inheritance can attribute
  // them.
  std::vector<Input> inputs;
  for (int n = 2; n <= 3; ++n) {
    InvoiceSpec inv;
    inv.id = "in_S" + std::to_string(n);
    inv.basil = false;
    inv.amount = 1900;
    inv.billing_reason = "subscription_cycle";
    inv.subscription = "sub_S";
    inv.paid_at = T0 + (n - 1) * 30 * kDay;
    inputs.push_back(stripe_event("evt_r" + std::to_string(n), "invoice.paid", inv.paid_at,
                                  invoice(inv), false, "2025-02-24.acacia"));
  }
  InvoiceSpec first;
  first.id = "in_S1";
  first.basil = false;
  first.amount = 1900;
  first.subscription = "sub_S";
  first.customer = "cus_S";
  first.paid_at = T0 + kMinute;
  inputs.push_back(stripe_event("evt_first", "invoice.paid", first.paid_at, invoice(first), false,
                                "2025-02-24.acacia"));
  inputs.push_back(pick(story.events, {"checkout"})[0]);
  Harness h;
  h.feed(web);
  h.feed(inputs[0]);
  h.feed(inputs[1]);
  REQUIRE(h.latest.size() == 2);
  CHECK(View(h.latest.at("acme/in_S2")).str("method") == "unattributed");  // nothing to go on yet
  h.feed(inputs[2]);
  h.feed(inputs[3]);
  REQUIRE(h.latest.size() == 3);
  CHECK(View(h.latest.at("acme/in_S1")).str("method") == "metadata");
  CHECK(View(h.latest.at("acme/in_S2")).str("method") == "inherited");
  CHECK(View(h.latest.at("acme/in_S3")).str("method") == "inherited");
}

// --- evidence -----------------------------------------------------------------------------------

namespace {

const std::string V_META = "v-meta", V_REDIR = "v-redirect", V_REF = "v-reference",
                  V_MAIL = "v-mail";

// Four visitors, each with one distinct visit before the payment.
std::vector<Input> four_visitors() {
  return {
      pageview(V_META, "m1", T0, "https://shop.example/?utm_source=newsletter&utm_medium=email"),
      pageview(V_REDIR, "r1", T0 + 1000, "https://shop.example/blog",
               "https://news.ycombinator.com/item?id=1"),
      pageview(V_REF, "c1", T0 + 2000,
               "https://shop.example/?gclid=abc&utm_source=google&utm_medium=cpc"),
      pageview(V_MAIL, "e1", T0 + 3000, "https://shop.example/signup"),
      identify(V_MAIL, "e2", T0 + 4000, "payer@example.com"),
  };
}

}  // namespace

TEST_CASE(
    "evidence order: metadata > redirect > client_reference_id > identity graph > unattributed",
    "[engine][evidence]") {
  const Millis paid = T0 + kMinute;
  const auto web = four_visitors();
  struct Case {
    bool meta, redir, ref, mail;
    const char* method;
  };
  const Case cases[] = {
      {true, true, true, true, "metadata"},
      {false, true, true, true, "checkout_redirect"},
      {false, false, true, true, "client_reference_id"},
      {false, false, false, true, "identity_graph"},
      {false, false, false, false, "unattributed"},
  };
  for (const auto& c : cases) {
    INFO("expect " << c.method);
    std::vector<Input> others{
        one_off_checkout("evt_e", "cs_test_E", "pi_E", 3000, paid,
                         c.meta ? metadata({{"revtrace_visitor_id", V_META}}) : bj::object{},
                         c.mail ? "Payer@Example.com" : "other@example.com", c.ref ? V_REF : "")};
    if (c.redir) others.push_back(redirect(V_REDIR, "rd1", "cs_test_E", paid + 4000));
    auto ledger = same_ledger_in_every_order(web, others, 20);
    REQUIRE(ledger.size() == 1);  // an unattributable payment is still revenue
    View r(ledger.at("acme/pi_E"));
    CHECK(r.str("method") == c.method);
    CHECK(r.num("amount") == 3000);
    // Every linked visitor's touches are merged (cross-device).
    const std::size_t linked =
        (c.meta ? 1 : 0) + (c.redir ? 1 : 0) + (c.ref ? 1 : 0) + (c.mail ? 1 : 0);
    CHECK(r.touches() == linked);
    CHECK(r.visitors().size() == linked);
  }
}

TEST_CASE("later evidence upgrades the result with a new revision", "[engine][evidence]") {
  const Millis paid = T0 + kMinute;
  Harness h;
  h.feed(newsletter_visit(V, T0, "v"));
  const auto webhook =
      h.feed(one_off_checkout("evt_w", "cs_test_W", "pi_W", 4900, paid, {}, "late@example.com"));
  REQUIRE(webhook.revenue.size() == 1);
  CHECK(View(webhook.revenue[0].value).str("method") == "unattributed");
  CHECK(View(webhook.revenue[0].value).num("revision") == 1);  // one observation, nothing else

  SECTION("the success-page redirect lands after the webhook") {
    const auto up = h.feed(redirect(V, "rd", "cs_test_W", paid + 3000));
    REQUIRE(up.revenue.size() == 1);
    View r(up.revenue[0].value);
    CHECK(r.num("revision") == 4);  // + the redirect, visitor V, V's session
    CHECK(r.str("method") == "checkout_redirect");
    CHECK(r.credits("first_touch") == std::vector<std::int64_t>{4900});
    // The same redirect again changes nothing.
    const auto again = h.feed(redirect(V, "rd", "cs_test_W", paid + 3000));
    CHECK(again.kind == Outcome::Kind::skipped);
    CHECK(again.revenue.empty());
  }
  SECTION("an identify with the payer's email comes later") {
    const auto up = h.feed(identify(V, "id", paid + kDay, "LATE@example.com"));
    REQUIRE(up.revenue.size() == 1);
    CHECK(View(up.revenue[0].value).str("method") == "identity_graph");
    CHECK(View(up.revenue[0].value).num("revision") == 3);  // + visitor V, V's session
  }
  SECTION("a pageview after the payment changes nothing") {
    h.feed(redirect(V, "rd", "cs_test_W", paid + 3000));
    const auto later =
        h.feed(pageview(V, "after", paid + kDay, "https://shop.example/?utm_source=twitter"));
    CHECK(later.kind == Outcome::Kind::applied);
    CHECK(later.revenue.empty());
  }
}

TEST_CASE("pageviews arriving after the payment still count when they happened before it",
          "[engine][evidence]") {
  const Millis paid = T0 + kMinute;
  Harness h;
  h.feed(one_off_checkout("evt_x", "cs_test_X", "pi_X", 4900, paid,
                          metadata({{"revtrace_visitor_id", V}})));
  CHECK(View(h.latest.at("acme/pi_X")).str("method") == "unattributed");  // no visit known yet
  h.feed(newsletter_visit(V, T0, "v"));
  View r(h.latest.at("acme/pi_X"));
  CHECK(r.str("method") == "metadata");
  REQUIRE(r.touches() == 1);
  CHECK(r.touch(0, "source") == "newsletter");
}

TEST_CASE("Payment Link with client_reference_id: every subset of its events, one payment",
          "[engine][money][evidence]") {
  const Millis paid = T0 + kMinute;
  const std::vector<Input> web{
      pageview("v-link", "l1", T0, "https://shop.example/pricing", "https://www.google.com/")};
  CheckoutSpec cs = link_session("cs_test_L3", 1500, "pi_L3", "plink_3", paid - kMinute);
  cs.client_reference_id = "v-link";
  const auto completed =
      stripe_event("evt_l3", "checkout.session.completed", paid, checkout_session(cs));
  ChargeSpec ch = charge_spec("ch_L3", "pi_L3", 1500, paid - 2000);
  const auto charged = charge_event("evt_l3_ch", "charge.succeeded", ch, paid - 2000);
  const auto intent = pi_event("evt_l3_pi", "pi_L3", "ch_L3", 1500, paid);
  for (const auto& subset : std::vector<std::vector<Input>>{{completed},
                                                            {completed, charged},
                                                            {completed, intent},
                                                            {completed, charged, intent},
                                                            {completed, charged, intent, completed,
                                                             charged}}) {
    const auto ledger = same_ledger_in_every_order(web, subset);
    REQUIRE(ledger.size() == 1);
    View r(ledger.begin()->second);
    CHECK(r.num("amount") == 1500);
    CHECK(r.str("method") == "client_reference_id");
    CHECK(r.stripe("payment_link") == "plink_3");
    CHECK(r.visitors() == std::vector<std::string>{"v-link"});
    CHECK(r.credits("last_touch") == std::vector<std::int64_t>{1500});
  }
  // Without the checkout session nothing names the visitor: still one payment, unattributed.
  const auto ledger = same_ledger_in_every_order(web, {charged, intent, charged});
  REQUIRE(ledger.size() == 1);
  View r(ledger.begin()->second);
  CHECK(r.num("amount") == 1500);
  CHECK(r.str("method") == "unattributed");
}

TEST_CASE("Payment Links: client_reference_id, and campaign metadata without any visit",
          "[engine][evidence]") {
  const Millis paid = T0 + kMinute;
  const std::vector<Input> web{
      pageview("v-link", "l1", T0, "https://shop.example/pricing", "https://www.google.com/")};
  CheckoutSpec with_reference = link_session("cs_test_L1", 1500, "pi_L1", "plink_1", paid - kMinute);
  with_reference.client_reference_id = "v-link";
  CheckoutSpec campaign = link_session("cs_test_L2", 2500, "pi_L2", "plink_2", paid - kMinute);
  campaign.metadata =
      metadata({{"revtrace_campaign", "podcast-may"}, {"revtrace_source", "podcast"}});
  auto ledger = same_ledger_in_every_order(
      web,
      {stripe_event("evt_l1", "checkout.session.completed", paid, checkout_session(with_reference)),
       stripe_event("evt_l2", "checkout.session.completed", paid, checkout_session(campaign))});
  REQUIRE(ledger.size() == 2);
  View ref(ledger.at("acme/pi_L1"));
  CHECK(ref.str("method") == "client_reference_id");
  CHECK(ref.stripe("payment_link") == "plink_1");
  CHECK(ref.visitors() == std::vector<std::string>{"v-link"});
  REQUIRE(ref.touches() == 1);
  CHECK(ref.touch(0, "referrer") != "<null>");
  View link(ledger.at("acme/pi_L2"));
  CHECK(link.str("method") == "payment_link");
  CHECK(link.visitors().empty());
  REQUIRE(link.touches() == 1);
  CHECK(link.touch(0, "campaign") == "podcast-may");
  CHECK(link.touch(0, "source") == "podcast");
  CHECK(link.touch(0, "at") == std::to_string(paid - kMinute));
  CHECK(link.credits("linear") == std::vector<std::int64_t>{2500});
}

TEST_CASE("site settings: lookback window, extra metadata keys, session ids",
          "[engine][evidence]") {
  const Millis paid = T0 + 30 * kDay;
  Harness h;
  h.settings.lookback = 7 * kDay;
  h.settings.visitor_id_keys.push_back("attribu_visitor_id");
  h.feed(pageview(V, "old", T0, "https://shop.example/?utm_source=old"));
  h.feed(pageview(V, "new", paid - kDay, "https://shop.example/?utm_source=recent", "", "sess-42"));
  SECTION("a touch older than the site's lookback does not count") {
    h.feed(one_off_checkout("evt_k", "cs_test_K", "pi_K", 900, paid,
                            metadata({{"attribu_visitor_id", V}})));
    View r(h.latest.at("acme/pi_K"));
    CHECK(r.str("method") == "metadata");
    REQUIRE(r.touches() == 1);
    CHECK(r.touch(0, "source") == "recent");
  }
  SECTION("revtrace_session_id resolves through the pixel's session") {
    h.feed(one_off_checkout("evt_k", "cs_test_K", "pi_K", 900, paid,
                            metadata({{"revtrace_session_id", "sess-42"}})));
    View r(h.latest.at("acme/pi_K"));
    CHECK(r.str("method") == "metadata");
    CHECK(r.visitors() == std::vector<std::string>{V});
  }
  SECTION("an unknown session id links nobody") {
    h.feed(one_off_checkout("evt_k", "cs_test_K", "pi_K", 900, paid,
                            metadata({{"revtrace_session_id", "nope"}})));
    CHECK(View(h.latest.at("acme/pi_K")).str("method") == "unattributed");
  }
}

TEST_CASE("sites never see each other's data", "[engine][evidence]") {
  Harness h;
  h.feed(newsletter_visit(V, T0, "v"));
  h.feed(identify(V, "id", T0 + 1000, "shared@example.com"));
  // Another site, same visitor id and email: its payment must not use acme's visits or identify.
  const Input other = [] {
    CheckoutSpec s;
    s.id = "cs_test_O";
    s.amount = 700;
    s.payment_intent = "pi_O";
    s.email = "shared@example.com";
    s.metadata = metadata({{"revtrace_visitor_id", V}});
    s.created = T0;
    return stripe_event("evt_o", "checkout.session.completed", T0 + kMinute, checkout_session(s),
                        false, "2025-03-31.basil", "globex");
  }();
  h.feed(other);
  REQUIRE(h.latest.count("globex/pi_O") == 1);
  CHECK(View(h.latest.at("globex/pi_O")).str("method") == "unattributed");
}

// --- determinism
// ----------------------------------------------------------------------------------

namespace {

struct Mix {
  std::vector<Input> web, others;
};

// Every story above at once, on one site: what a busy partition looks like.
Mix everything() {
  Mix m;
  const Millis paid = T0 + kMinute;
  m.web = newsletter_visit(V, T0, "v");
  for (auto& in : four_visitors()) m.web.push_back(in);
  m.web.push_back(pageview(V, "v-late", paid + kDay,
                           "https://shop.example/?utm_source=twitter&utm_medium=social"));
  m.web.push_back(identify("v-phone", "p-id", paid + 2 * kDay, "sub@example.com"));
  m.web.push_back(pageview("v-phone", "p-1", paid - 10 * kDay,
                           "https://shop.example/?utm_source=facebook&utm_medium=paid_social"));
  for (auto& in : pre_basil_subscription().events) m.others.push_back(in);
  for (auto& in : basil_subscription().events) m.others.push_back(in);
  m.others.push_back(one_off_checkout("evt_m1", "cs_test_M1", "pi_M1", 4900, paid,
                                      metadata({{"revtrace_visitor_id", V}})));
  m.others.push_back(charge_event("evt_m1c", "charge.succeeded",
                                  charge_spec("ch_M1", "pi_M1", 4900, paid - 1000), paid));
  m.others.push_back(charge_event("evt_m1r", "charge.refunded",
                                  charge_spec("ch_M1", "pi_M1", 4900, paid - 1000, 900),
                                  paid + kDay));
  m.others.push_back(one_off_checkout("evt_m2", "cs_test_M2", "pi_M2", 3000, paid, {},
                                      "payer@example.com", V_REF));
  m.others.push_back(redirect(V_REDIR, "rd-m2", "cs_test_M2", paid + 2000));
  m.others.push_back(one_off_checkout("evt_m3", "cs_test_M3", "pi_M3", 800, paid + kMinute, {},
                                      "nobody@example.com"));
  m.others.push_back(one_off_checkout("evt_m4", "cs_live_M4", "pi_M4", 99900, paid,
                                      metadata({{"revtrace_visitor_id", V}}), "", "", true));
  // A payment naming a pixel session that the pixel reports (by a custom event, after the
  // payment) for a visitor the payment already reaches through client_reference_id: the method
  // upgrades to metadata whichever comes first.
  m.web.push_back(
      pageview("v-sess", "vs-1", T0 + 7000, "https://shop.example/?utm_source=podcast"));
  m.web.push_back(custom_event("v-sess", "vs-2", paid + kMinute, "upgrade", "sess-m5"));
  m.others.push_back(one_off_checkout("evt_m5", "cs_test_M5", "pi_M5", 1200, paid,
                                      metadata({{"revtrace_session_id", "sess-m5"}}), "",
                                      "v-sess"));
  // A pre-basil subscription seen only through its creation, the first invoice's charge (which
  // names the invoice but not the subscription) and a renewal: the renewal inherits from the
  // charge's payment whichever arrives first.
  m.others.push_back(stripe_event("evt_x_sub", "customer.subscription.created", paid - 2000,
                                  subscription("sub_X", "cus_X", "in_X1", {}, paid - 2000), false,
                                  "2025-02-24.acacia"));
  {
    ChargeSpec ch = charge_spec("ch_X1", "pi_X1", 1500, paid - 1000);
    ch.basil = false;
    ch.invoice = "in_X1";
    ch.metadata = metadata({{"revtrace_visitor_id", V_META}});
    m.others.push_back(stripe_event("evt_x_ch1", "charge.succeeded", paid - 1000, charge(ch), false,
                                    "2025-02-24.acacia"));
    InvoiceSpec renewal;
    renewal.id = "in_X2";
    renewal.basil = false;
    renewal.amount = 1500;
    renewal.billing_reason = "subscription_cycle";
    renewal.subscription = "sub_X";
    renewal.paid_at = paid + 30 * kDay;
    m.others.push_back(stripe_event("evt_x_in2", "invoice.paid", renewal.paid_at, invoice(renewal),
                                    false, "2025-02-24.acacia"));
  }
  return m;
}

}  // namespace

TEST_CASE("determinism: any interleaving of the topics gives the same latest records",
          "[engine][determinism]") {
  const auto mix = everything();
  const auto ledger = same_ledger_in_every_order(mix.web, mix.others, 100);
  // Payments: 3 + 3 + 2 subscription invoices, 5 one-off checkouts; counted once each.
  REQUIRE(ledger.size() == 13);
  std::int64_t total = 0;
  for (const auto& [k, v] : ledger) total += View(v).num("amount");
  CHECK(total == 3 * 1900 + 3 * 2900 + 2 * 1500 + 4900 + 3000 + 800 + 99900 + 1200);
  CHECK(View(ledger.at("acme/pi_M5")).str("method") == "metadata");
  CHECK(View(ledger.at("acme/in_X1")).str("method") == "metadata");
  CHECK(View(ledger.at("acme/in_X2")).str("method") == "inherited");
  CHECK(View(ledger.at("acme/pi_M1")).num("net") == 4000);
  CHECK(View(ledger.at("acme/pi_M2")).str("method") == "checkout_redirect");
  CHECK(View(ledger.at("acme/pi_M3")).str("method") == "unattributed");
  // The phone identified with the subscriber's email days later: its earlier visit joins the
  // subscription's touches (cross-device), for the first payment and so for the renewals.
  View sub(ledger.at("acme/in_S1"));
  CHECK(sub.touches() == 2);
  CHECK(View(ledger.at("acme/in_S3")).touches() == 2);
}

TEST_CASE("determinism: a replay of the same log re-emits byte-identical revisions",
          "[engine][determinism]") {
  const auto mix = everything();
  std::mt19937 rng(4242);
  const auto inputs = interleave(mix.web, mix.others, rng);
  Harness first, replay;
  first.feed(inputs);
  replay.feed(inputs);
  REQUIRE(first.emitted.size() == replay.emitted.size());
  for (std::size_t i = 0; i < first.emitted.size(); ++i) {
    CHECK(first.emitted[i].key == replay.emitted[i].key);
    CHECK(first.emitted[i].value == replay.emitted[i].value);
  }
  CHECK(first.store.entries() == replay.store.entries());
}

TEST_CASE("determinism: a restart (new engine over the same state) changes nothing",
          "[engine][determinism]") {
  const auto mix = everything();
  std::mt19937 rng(99);
  const auto inputs = interleave(mix.web, mix.others, rng);
  Harness straight;
  straight.feed(inputs);

  MemoryStateStore store;
  SiteSettings settings = Harness().settings;
  std::map<std::string, std::string> latest;
  const std::size_t half = inputs.size() / 2;
  for (int part = 0; part < 2; ++part) {
    AttributionEngine engine(store,
                             [&](std::string_view) -> const SiteSettings& { return settings; });
    for (std::size_t i = part == 0 ? 0 : half; i < (part == 0 ? half : inputs.size()); ++i) {
      const auto& in = inputs[i];
      const auto o = in.topic == Topic::web        ? engine.on_web_event(in.value)
                     : in.topic == Topic::redirect ? engine.on_checkout_redirect(in.value)
                                                   : engine.on_stripe_event(in.value);
      for (const auto& r : o.revenue) {
        if (r.tombstone) {
          latest.erase(r.key);
        } else {
          latest[r.key] = r.value;
        }
      }
    }
  }
  CHECK(latest == straight.latest);  // revisions included: same log order, same numbering
}

namespace {

// The web records of `inputs` (their order kept) and the others.
std::pair<std::vector<Input>, std::vector<Input>> by_topic(std::vector<Input>::const_iterator begin,
                                                           std::vector<Input>::const_iterator end) {
  std::pair<std::vector<Input>, std::vector<Input>> out;
  for (auto it = begin; it != end; ++it) {
    (it->topic == Topic::web ? out.first : out.second).push_back(*it);
  }
  return out;
}

}  // namespace

TEST_CASE("determinism: a revision is a function of the set of inputs, not of their order",
          "[engine][determinism]") {
  const Millis paid = T0 + kMinute;
  const auto web = newsletter_visit(V, T0, "v");
  const auto webhook = one_off_checkout("evt_w", "cs_test_W", "pi_W", 4900, paid);
  const auto thanks = redirect(V, "rd", "cs_test_W", paid + 3000);
  Harness webhook_first, redirect_first;
  webhook_first.feed(web);
  webhook_first.feed(webhook);
  webhook_first.feed(thanks);
  redirect_first.feed(web);
  redirect_first.feed(thanks);
  redirect_first.feed(webhook);
  CHECK(webhook_first.emitted.size() == 2);  // unattributed, then upgraded
  CHECK(redirect_first.emitted.size() == 1);
  REQUIRE(webhook_first.latest == redirect_first.latest);  // byte for byte, revision included
  CHECK(View(redirect_first.latest.at("acme/pi_W")).num("revision") == 4);

  SECTION("an input that changes nothing visible in this order still counts: same latest record") {
    // payment_intent.succeeded after charge.succeeded adds the payment intent's own observation
    // but no new output field; in the other order it is the charge that adds nothing visible.
    // Either way the last record carries both inputs in its revision.
    const auto ch = charge_event("evt_c", "charge.succeeded",
                                 charge_spec("ch_W", "pi_W", 4900, paid - 5000), paid - 4000);
    const auto pi = pi_event("evt_p", "pi_W", "ch_W", 4900, paid - 2000);
    Harness a, b;
    a.feed({webhook, ch, pi});
    b.feed({pi, webhook, ch});
    REQUIRE(a.latest == b.latest);
    CHECK(View(a.latest.at("acme/pi_W")).num("revision") == 3);
    // The last input of `a` changed no content, yet it was emitted under the grown revision.
    CHECK(without_revision(a.emitted.back().value) ==
          without_revision(a.emitted[a.emitted.size() - 2].value));
  }
}

TEST_CASE("determinism: state rebuilt in another order, then live again: revisions continue",
          "[engine][determinism]") {
  // The processor's recovery (processor/RECOVERY.md), modelled: a live run emits the output of
  // inputs [0, k); the state is then rebuilt — from nothing, or from a snapshot taken after
  // [0, l) — by re-processing the same records in another interleaving with output suppressed;
  // then [k, end) is processed live. A consumer sees the live output before and after.
  const auto mix = everything();
  std::map<std::string, std::string> reference;
  for (int seed = 0; seed < 60; ++seed) {
    INFO("seed " << seed);
    std::mt19937 rng(static_cast<unsigned>(seed) * 104729u + 3u);
    const auto inputs = interleave(mix.web, mix.others, rng);
    const auto n = inputs.size();
    const auto k = std::uniform_int_distribution<std::size_t>(0, n)(rng);
    const auto l = std::uniform_int_distribution<std::size_t>(0, k)(rng);

    Harness straight;
    straight.feed(inputs);
    if (seed == 0) reference = straight.latest;
    REQUIRE(straight.latest == reference);  // every interleaving, revisions included

    Harness live;
    for (std::size_t i = 0; i < l; ++i) (void)live.feed(inputs[i]);
    const MemoryStateStore snapshot = live.store;
    for (std::size_t i = l; i < k; ++i) (void)live.feed(inputs[i]);

    for (const bool from_snapshot : {false, true}) {
      INFO((from_snapshot ? "rebuilt from the snapshot" : "rebuilt from nothing"));
      Harness rebuilt(from_snapshot ? snapshot : MemoryStateStore{});
      const auto begin = inputs.begin() + static_cast<std::ptrdiff_t>(from_snapshot ? l : 0);
      const auto [web, others] = by_topic(begin, inputs.begin() + static_cast<std::ptrdiff_t>(k));
      rebuilt.feed(interleave(web, others, rng), /*suppress=*/true);
      REQUIRE(rebuilt.emitted.empty());

      // The consumer that saw the live output carries on with the rebuilt engine's output.
      rebuilt.consumer = live.consumer;
      const auto before = live.consumer.highest;
      for (std::size_t i = k; i < n; ++i) {
        for (const auto& rec : rebuilt.feed(inputs[i]).revenue) {
          if (rec.tombstone) continue;
          auto it = before.find(rec.key);
          if (it != before.end()) CHECK(revision_of(rec.value) > it->second);
        }
      }
      CHECK(rebuilt.latest == straight.latest);  // as if nothing had happened, byte for byte
    }
  }
}

// --- rejected and skipped records ---------------------------------------------------------------

TEST_CASE("invalid records are rejected with a precise reason", "[engine][invalid]") {
  Harness h;
  auto& e = h.engine;
  auto reason = [](const Outcome& o) {
    CHECK(o.kind == Outcome::Kind::invalid);
    CHECK(o.revenue.empty());
    return o.reason;
  };
  CHECK(reason(e.on_web_event("{\"type\":\"pageview\",")).starts_with("web event: invalid JSON"));
  CHECK(reason(e.on_web_event("[1,2]")) == "web event: record is not a JSON object");
  CHECK(
      reason(e.on_web_event(
          R"({"type":"pageview","site_id":"acme","event_id":"e","received_at":1744000000000,"url":"https://x/"})")) ==
      "web event: missing string field visitor_id");
  CHECK(
      reason(e.on_web_event(
          R"({"type":"pageview","site_id":"acme","visitor_id":7,"event_id":"e","received_at":1744000000000,"url":"https://x/"})")) ==
      "web event: field visitor_id is not a string");
  CHECK(
      reason(e.on_web_event(
          R"({"type":"pageview","site_id":"acme","visitor_id":"v","event_id":"e","received_at":"soon","url":"https://x/"})")) ==
      "web event: field received_at is not an integer");
  CHECK(
      reason(e.on_web_event(
          R"({"type":"pageview","site_id":"acme","visitor_id":"v","event_id":"e","received_at":1744000000000})")) ==
      "web event: missing string field url");
  CHECK(
      reason(e.on_web_event(
          R"({"type":"identify","site_id":"acme","visitor_id":"v","event_id":"e","received_at":1744000000000})")) ==
      "web event: missing string field email");
  CHECK(
      reason(e.on_web_event(
          R"({"type":"click","site_id":"acme","visitor_id":"v","event_id":"e","received_at":1744000000000})")) ==
      "web event: unknown type click");
  CHECK(
      reason(e.on_web_event(
          R"({"type":"pageview","site_id":"a/b","visitor_id":"v","event_id":"e","received_at":1744000000000,"url":"https://x/"})")) ==
      "web event: site_id must match ^[A-Za-z0-9_-]+$");
  CHECK(
      reason(e.on_web_event(
          R"({"type":"pageview","site_id":"acme","visitor_id":"v","event_id":"e","received_at":1744000000000,"url":"https://x/","device":"phone"})")) ==
      "web event: field device is not an object");
  CHECK(
      reason(e.on_checkout_redirect(
          R"({"type":"checkout_redirect","site_id":"acme","visitor_id":"v","event_id":"e","received_at":1744000000000,"checkout_session_id":"pi_1"})")) ==
      "checkout redirect: checkout_session_id pi_1 is not a cs_ id");
  CHECK(
      reason(e.on_checkout_redirect(
          R"({"type":"checkout_redirect","site_id":"acme","visitor_id":"v","event_id":"e","received_at":1744000000000})")) ==
      "checkout redirect: missing string field checkout_session_id");

  const std::string record =
      R"({"site_id":"acme","source":"webhook","received_at":1744000000000,"event_id":"evt_1","event_type":"charge.succeeded","livemode":false,"api_version":null,"created":1744000000,"payload":)";
  auto stripe = [&](const std::string& payload) {
    return e.on_stripe_event(record + bj::serialize(bj::value(payload)) + "}");
  };
  CHECK(reason(e.on_stripe_event("not json")).starts_with("stripe event: invalid JSON"));
  CHECK(
      reason(e.on_stripe_event(
          R"({"site_id":"acme","event_id":"evt_1","event_type":"charge.succeeded","livemode":false})")) ==
      "stripe event: missing string field payload");
  CHECK(
      reason(e.on_stripe_event(
          R"({"site_id":"acme","event_id":"evt_1","event_type":"charge.succeeded","livemode":"no","payload":"{}"})")) ==
      "stripe event: field livemode is not a boolean");
  CHECK(reason(stripe("{\"id\":")).starts_with("stripe event: payload is not JSON"));
  CHECK(reason(stripe(R"({"id":"ch_1","object":"charge"})")) ==
        "stripe event: payload is a Stripe charge, not an event");
  CHECK(reason(stripe(
            R"({"id":"evt_1","object":"event","type":"charge.succeeded","created":1744000000})")) ==
        "stripe event payload: missing object field data");
  CHECK(
      reason(stripe(
          R"({"id":"evt_2","object":"event","type":"charge.succeeded","created":1744000000,"data":{"object":{}}})")) ==
      "stripe event: payload id evt_2 differs from event_id evt_1");
  CHECK(
      reason(stripe(
          R"({"id":"evt_1","object":"event","type":"charge.refunded","created":1744000000,"data":{"object":{}}})")) ==
      "stripe event: payload type charge.refunded differs from event_type charge.succeeded");
  CHECK(
      reason(stripe(
          R"({"id":"evt_1","object":"event","type":"charge.succeeded","created":1744000000,"data":{"object":{"id":"ch_1","status":"succeeded","created":1744000000,"currency":"usd"}}})")) ==
      "charge.succeeded: data.object: missing integer field amount");
  CHECK(
      reason(stripe(
          R"({"id":"evt_1","object":"event","type":"charge.succeeded","created":1744000000,"data":{"object":{"id":"pi_1","status":"succeeded","amount":5,"created":1744000000,"currency":"usd"}}})")) ==
      "charge.succeeded: data.object.id pi_1 has the wrong prefix for this event type");
  CHECK(h.store.size() == 0);  // nothing rejected left state behind
}

TEST_CASE("skipped: unused Stripe event types, setup sessions, duplicates", "[engine][skipped]") {
  Harness h;
  const auto unused = h.engine.on_stripe_event(
      R"({"site_id":"acme","event_id":"evt_9","event_type":"customer.updated","livemode":true,"payload":"{}"})");
  CHECK(unused.kind == Outcome::Kind::skipped);
  CHECK(unused.reason == "unused Stripe event type customer.updated");
  CHECK(unused.skip == Outcome::Skip::unused_type);
  CheckoutSpec setup;
  setup.id = "cs_test_setup";
  setup.mode = "setup";
  setup.payment_status = "no_payment_required";
  const auto s = h.engine.on_stripe_event(
      stripe_event("evt_setup", "checkout.session.completed", T0, checkout_session(setup)).value);
  CHECK(s.kind == Outcome::Kind::skipped);
  CHECK(s.reason == "setup-mode checkout session cs_test_setup carries no payment");
  CHECK(s.skip == Outcome::Skip::no_payment);
  const auto pay = one_off_checkout("evt_d", "cs_test_D", "pi_D", 100, T0);
  CHECK(h.feed(pay).kind == Outcome::Kind::applied);
  const auto state = h.store.entries();
  const auto dup = h.feed(pay);
  CHECK(dup.kind == Outcome::Kind::skipped);
  CHECK(dup.skip == Outcome::Skip::duplicate);
  CHECK(
      dup.reason ==
      "duplicate: Stripe event evt_d (checkout.session.completed for cs_test_D) adds nothing new");
  // Stripe's "two events for one change": another event id, the same object: skipped too, and
  // neither leaves anything behind (state grows with payments, not with events).
  auto twin = pay;
  twin.value.replace(twin.value.find("evt_d"), 5, "evt_e");
  twin.value.replace(twin.value.find("evt_d"), 5, "evt_e");
  CHECK(h.feed(twin).kind == Outcome::Kind::skipped);
  CHECK(h.store.entries() == state);
  const auto pv = pageview(V, "pv-dup", T0, "https://shop.example/");
  CHECK(h.feed(pv).kind == Outcome::Kind::applied);
  CHECK(h.feed(pv).kind == Outcome::Kind::skipped);
}

TEST_CASE("state stays bounded per visitor", "[engine][state]") {
  Harness h;
  for (int i = 0; i < 2000; ++i) {
    h.feed(pageview(V, "b" + std::to_string(i), T0 + i * kDay / 10,
                    "https://shop.example/?utm_source=s" + std::to_string(i % 7)));
  }
  // One timeline, plus its idle-index entry and the scope's bookkeeping (watermark, last sweep,
  // the site in the idle index).
  CHECK(h.store.keys("vis/", "vis0").size() == 1);
  CHECK(h.store.size() <= 5);
  CHECK(h.store.bytes() < 80'000);
}

namespace {
// Keys of the store that mention `id`.
std::size_t keys_naming(const MemoryStateStore& store, const std::string& id) {
  std::size_t n = 0;
  for (const auto& [k, v] : store.entries()) n += (k.find(id) != std::string::npos) ? 1 : 0;
  return n;
}
}  // namespace

TEST_CASE("idle anonymous visitors expire after lookback + margin; leads and customers stay",
          "[engine][state]") {
  Harness h;  // lookback 90 days, idle margin 30 days
  h.feed(pageview("v-anon", "a1", T0, "https://shop.example/?utm_source=x", "", "s-anon-1"));
  h.feed(pageview("v-anon", "a2", T0 + 40 * kMinute, "https://shop.example/", "", "s-anon-2"));
  h.feed(pageview("v-lead", "l1", T0, "https://shop.example/", "", "s-lead"));
  h.feed(identify("v-lead", "l2", T0 + kMinute, "lead@example.com"));
  h.feed(pageview("v-cust", "c1", T0, "https://shop.example/?utm_source=news", "", "s-cust"));
  h.feed(one_off_checkout("evt_c", "cs_test_c", "pi_c", 2500, T0 + 5 * kMinute,
                          metadata({{"revtrace_visitor_id", "v-cust"}})));
  REQUIRE(keys_naming(h.store, "v-anon") > 0);
  REQUIRE(keys_naming(h.store, "s-anon-1") > 0);

  // 121 days later. Stripe's watermark still holds expiry back (its last event is from T0)...
  const Millis later = T0 + 121 * kDay;
  CHECK(h.feed(pageview("v-new", "n1", later, "https://shop.example/")).expired_visitors == 0);
  CHECK(keys_naming(h.store, "v-anon") > 0);
  // ...until a Stripe event shows that time has come for every topic; the next day's sweep runs.
  h.feed(one_off_checkout("evt_n", "cs_test_n", "pi_n", 900, later + kDay));
  const auto swept = h.feed(pageview("v-new", "n2", later + kDay + kMinute, "https://shop.example/"));
  CHECK(swept.expired_visitors == 1);
  CHECK(keys_naming(h.store, "v-anon") == 0);  // timeline, idle index, identity nodes
  CHECK(keys_naming(h.store, "s-anon-1") == 0);  // pixel sessions and their identity nodes
  CHECK(keys_naming(h.store, "s-anon-2") == 0);
  CHECK(keys_naming(h.store, "vis/acme/v-lead") == 1);  // a lead: an email may pay later
  CHECK(keys_naming(h.store, "vis/acme/v-cust") == 1);  // a customer: a refund recomputes it
  // A refund of the old payment keeps its attribution (its visitor was kept).
  View before(h.latest.at("acme/pi_c"));
  h.feed(charge_event("evt_c_rf", "charge.refunded", charge_spec("ch_c", "pi_c", 2500, T0, 500),
                      later + 2 * kDay));
  View after(h.latest.at("acme/pi_c"));
  CHECK(after.touches() == before.touches());
  CHECK(after.num("net") == 2000);

  // The expired visitor comes back and pays: attributed to the new visit only.
  h.feed(pageview("v-anon", "a3", later + 3 * kDay, "https://shop.example/?utm_source=back"));
  h.feed(one_off_checkout("evt_b", "cs_test_b", "pi_b", 1200, later + 3 * kDay + kMinute,
                          metadata({{"revtrace_visitor_id", "v-anon"}})));
  View back(h.latest.at("acme/pi_b"));
  REQUIRE(back.touches() == 1);
  CHECK(back.touch(0, "source") == "back");
}

TEST_CASE("state stays proportional to active visitors over a year of traffic",
          "[engine][state]") {
  Harness h;
  constexpr int kDays = 365;
  constexpr int kPerDay = 20;
  for (int d = 0; d < kDays; ++d) {
    const Millis day = T0 + d * kDay;
    for (int i = 0; i < kPerDay; ++i) {
      const std::string v = "v" + std::to_string(d) + "-" + std::to_string(i);
      h.feed(pageview(v, v + "-1", day + i * kMinute, "https://shop.example/?utm_source=ads",
                      "", "s-" + v));
    }
    // A daily unattributed sale keeps Stripe's watermark moving.
    h.feed(one_off_checkout("evt_d" + std::to_string(d), "cs_test_d" + std::to_string(d),
                            "pi_d" + std::to_string(d), 1000, day + 12 * 3600 * 1000LL));
  }
  const auto visitors = h.store.keys("vis/", "vis0").size();
  // Visitors of the last lookback + margin (120) days, plus at most a day or two not swept yet.
  CHECK(visitors >= 120 * kPerDay);
  CHECK(visitors <= 123 * kPerDay);
  CHECK(h.store.keys("ses/", "ses0").size() == visitors);
  // Every payment is still there, and still counted.
  CHECK(h.latest.size() == static_cast<std::size_t>(kDays));
}

TEST_CASE("known limit: the per-visitor session cap can drop a touch a payment used",
          "[engine][state]") {
  // ENGINE.md, "Bounds and known limits": a visitor with more than 256 sessions loses its oldest.
  // A payment recomputed afterwards loses those touches without its basis growing; the engine
  // then does not reuse a revision number (previous + 1) and reports it.
  MemoryStateStore store;
  SiteSettings settings = Harness().settings;
  AttributionEngine engine(store,
                           [&](std::string_view) -> const SiteSettings& { return settings; });
  const Millis paid = T0 + 80 * kDay;
  auto web = [&](int i, Millis at) {
    return engine.on_web_event(
        pageview(V, "cap" + std::to_string(i), at,
                 "https://shop.example/?utm_source=s" + std::to_string(i % 2))
            .value);
  };
  for (int i = 0; i < 256; ++i) (void)web(i, paid - 79 * kDay + i * kDay / 4);
  const auto pay =
      engine.on_stripe_event(one_off_checkout("evt_cap", "cs_test_cap", "pi_cap", 1000, paid,
                                              metadata({{"revtrace_visitor_id", V}}))
                                 .value);
  REQUIRE(pay.revenue.size() == 1);
  CHECK(View(pay.revenue[0].value).touches() == 256);
  const auto first = revision_of(pay.revenue[0].value);
  CHECK(first == 1 + 1 + 256);  // the observation, V, 256 sessions
  for (int i = 256; i < 266; ++i) {
    CHECK(web(i, paid + kDay + i * kMinute).revenue.empty());  // after the payment
  }
  ChargeSpec refunded = charge_spec("ch_cap", "pi_cap", 1000, paid - 5000, 100);
  const auto refund = engine.on_stripe_event(
      charge_event("evt_cap_rf", "charge.refunded", refunded, paid + 2 * kDay).value);
  REQUIRE(refund.revenue.size() == 1);
  CHECK(View(refund.revenue[0].value).touches() == 246);  // the 10 oldest were dropped
  CHECK(refund.forced_revisions == 1);
  CHECK(revision_of(refund.revenue[0].value) == first + 1);
}

TEST_CASE("client_reference_id outranks Payment Link campaign metadata, and both touches count",
          "[engine][evidence]") {
  const Millis paid = T0 + kMinute;
  Harness h;
  h.feed(pageview("v-link", "l1", T0, "https://shop.example/pricing", "https://www.google.com/"));
  CheckoutSpec s;
  s.id = "cs_test_LB";
  s.amount = 1000;
  s.payment_intent = "pi_LB";
  s.payment_link = "plink_3";
  s.client_reference_id = "v-link";
  s.metadata = metadata({{"revtrace_campaign", "launch"}});
  s.created = paid - 30'000;  // the link was opened after the visit
  h.feed(stripe_event("evt_lb", "checkout.session.completed", paid, checkout_session(s)));
  View r(h.latest.at("acme/pi_LB"));
  CHECK(r.str("method") == "client_reference_id");
  REQUIRE(r.touches() == 2);
  CHECK(r.touch(1, "campaign") == "launch");
  CHECK(r.credits("last_touch") == std::vector<std::int64_t>{0, 1000});
}

TEST_CASE("the captured basil JPY delivery, byte for byte: zero-decimal amount, test mode",
          "[engine][money]") {
  std::ifstream in(testdata_dir() / "checkout.session.completed_api-2025-06-30.basil_jpy.json");
  std::stringstream body;
  body << in.rdbuf();
  bj::object record{{"site_id", "acme"},
                    {"source", "webhook"},
                    {"received_at", 1753539919000},
                    {"event_id", "evt_1Rp92IE2YllEOQrty5bxSwY3"},
                    {"event_type", "checkout.session.completed"},
                    {"livemode", false},
                    {"api_version", "2025-06-30.basil"},
                    {"created", 1753539918},
                    {"payload", body.str()}};
  Harness h;
  const auto out = h.feed(Input{Topic::stripe, bj::serialize(record), "jpy"});
  REQUIRE(out.revenue.size() == 1);
  CHECK(out.revenue[0].key == "acme/pi_3Rp92HE2YllEOQrt10Khp5XV");
  View r(out.revenue[0].value);
  CHECK(r.num("amount") == 800);
  CHECK(r.str("currency") == "jpy");
  CHECK(r.r["livemode"].get_bool().value() == false);
  CHECK(r.str("method") == "unattributed");
  CHECK(r.stripe("customer") == "cus_SkQpGfARLDMyiS");
}

TEST_CASE("a free trial is not revenue, but its renewals inherit its attribution",
          "[engine][subscription]") {
  const Millis start = T0 + kMinute;
  const auto web = newsletter_visit(V, T0, "v");
  CheckoutSpec cs;
  cs.id = "cs_test_trial";
  cs.mode = "subscription";
  cs.payment_status = "no_payment_required";
  cs.subscription = "sub_T";
  cs.invoice = "in_T1";
  cs.customer = "cus_T";
  cs.metadata = metadata({{"revtrace_visitor_id", V}});
  cs.created = start - kMinute;
  InvoiceSpec trial;
  trial.id = "in_T1";
  trial.amount = 0;
  trial.subscription = "sub_T";
  trial.customer = "cus_T";
  trial.paid_at = start;
  InvoiceSpec renewal = trial;
  renewal.id = "in_T2";
  renewal.amount = 1900;
  renewal.billing_reason = "subscription_cycle";
  renewal.paid_at = start + 14 * kDay;
  auto ledger = same_ledger_in_every_order(
      web, {stripe_event("evt_t_cs", "checkout.session.completed", start, checkout_session(cs)),
            stripe_event("evt_t_1", "invoice.paid", start, invoice(trial)),
            stripe_event("evt_t_2", "invoice.paid", renewal.paid_at, invoice(renewal))});
  REQUIRE(ledger.size() == 1);
  View r(ledger.at("acme/in_T2"));
  CHECK(r.str("method") == "inherited");
  CHECK(r.num("amount") == 1900);
  CHECK(r.credits("first_touch") == std::vector<std::int64_t>{1900});
}
