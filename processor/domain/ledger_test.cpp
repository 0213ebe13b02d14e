// PaymentLedger: grouping of Stripe objects into payments, the canonical key, money rules, and
// order independence of the stored facts. Also the identity graph and visitor timelines.
#include "processor/domain/ledger.hpp"

#include <catch2/catch.hpp>
#include <random>

#include "processor/domain/identity.hpp"
#include "processor/domain/visitors.hpp"

using namespace revtrace::domain;

namespace {

Observation obs(ObjectKind kind, std::string id, PayState state = PayState::succeeded,
                std::int64_t amount = 0, Millis paid_at = 0) {
  Observation o;
  o.kind = kind;
  o.id = std::move(id);
  o.state = state;
  o.amount = amount;
  o.currency = amount > 0 ? "usd" : "";
  o.paid_at = state == PayState::succeeded ? paid_at : 0;
  return o;
}

// Every root's facts, by the ids they contain: the ledger's content, independent of which id
// happens to be a root.
std::map<std::string, std::string> content(const PaymentLedger& ledger,
                                           const std::vector<std::string>& ids) {
  std::map<std::string, std::string> out;
  for (const auto& id : ids) {
    if (auto r = ledger.find(id)) out[id] = encode(ledger.facts(*r));
  }
  return out;
}

}  // namespace

TEST_CASE("canonical key: invoice > payment intent > charge > checkout session", "[ledger]") {
  PaymentFacts f;
  auto cs = obs(ObjectKind::checkout_session, "cs_test_1");
  f.objects[cs.id] = cs;
  CHECK(canonical_payment_key(f) == "cs_test_1");
  f.objects[cs.id].payment_intent = "pi_1";
  CHECK(canonical_payment_key(f) == "pi_1");
  auto ch = obs(ObjectKind::charge, "ch_1");
  ch.payment_intent = "pi_1";
  f.objects[ch.id] = ch;
  CHECK(canonical_payment_key(f) == "pi_1");
  f.objects[ch.id].invoice = "in_1";
  CHECK(canonical_payment_key(f) == "in_1");
  PaymentFacts legacy;
  legacy.objects["py_9"] = obs(ObjectKind::charge, "py_9");
  CHECK(canonical_payment_key(legacy) == "py_9");
}

TEST_CASE("summary: amount priority, refunds capped, earliest success, pending is not revenue",
          "[ledger]") {
  PaymentFacts f;
  auto cs = obs(ObjectKind::checkout_session, "cs_1", PayState::pending, 0);
  cs.payment_intent = "pi_1";
  f.objects[cs.id] = cs;
  auto s = summarize(f);
  CHECK_FALSE(s.is_revenue());
  f.objects["cs_1"].state = PayState::succeeded;
  f.objects["cs_1"].amount = 5000;
  f.objects["cs_1"].currency = "usd";
  f.objects["cs_1"].paid_at = 2000;
  s = summarize(f);
  CHECK(s.is_revenue());
  CHECK(s.amount == 5000);
  CHECK(s.paid_at == 2000);
  auto ch =
      obs(ObjectKind::charge, "ch_1", PayState::succeeded, 4900, 1000);  // the charge is what moved
  ch.payment_intent = "pi_1";
  ch.amount_refunded = 9999;
  f.objects[ch.id] = ch;
  s = summarize(f);
  CHECK(s.amount == 4900);
  CHECK(s.paid_at == 1000);
  CHECK(s.refunded == 4900);  // never more than the amount
  CHECK(s.key == "pi_1");
  CHECK(s.charge == "ch_1");
  CHECK(s.checkout_session == "cs_1");
}

TEST_CASE("ledger: events of one payment in any order end in one payment with the same facts",
          "[ledger]") {
  auto cs = obs(ObjectKind::checkout_session, "cs_1", PayState::succeeded, 4900, 3000);
  cs.payment_intent = "pi_1";
  auto ch = obs(ObjectKind::charge, "ch_1", PayState::succeeded, 4900, 1000);
  ch.payment_intent = "pi_1";
  auto refund = ch;
  refund.amount_refunded = 400;
  auto pi = obs(ObjectKind::payment_intent, "pi_1", PayState::succeeded, 4900, 2000);
  pi.charge = "ch_1";
  auto other = obs(ObjectKind::charge, "ch_2", PayState::succeeded, 100, 500);
  const std::vector<Observation> all{cs, ch, refund, pi, other, ch};
  const std::vector<std::string> ids{"cs_1", "pi_1", "ch_1", "ch_2"};

  std::map<std::string, std::string> expected;
  std::mt19937 rng(1);
  for (int round = 0; round < 100; ++round) {
    auto order = all;
    std::shuffle(order.begin(), order.end(), rng);
    MemoryStateStore store;
    PaymentLedger ledger(store, "acme/test");
    for (const auto& o : order) (void)ledger.apply(o);
    const auto c = content(ledger, ids);
    REQUIRE(c.size() == 4);
    CHECK(ledger.find("cs_1") == ledger.find("ch_1"));
    CHECK(ledger.find("pi_1") == ledger.find("ch_1"));
    CHECK(ledger.find("ch_2") != ledger.find("ch_1"));
    if (round == 0) {
      expected = c;
      const auto s = summarize(ledger.facts(*ledger.find("cs_1")));
      CHECK(s.key == "pi_1");
      CHECK(s.amount == 4900);
      CHECK(s.refunded == 400);
      CHECK(s.paid_at == 1000);
    } else {
      REQUIRE(c == expected);
    }
  }
}

TEST_CASE("ledger: re-applying a known observation reports no change", "[ledger]") {
  MemoryStateStore store;
  PaymentLedger ledger(store, "acme/live");
  auto ch = obs(ObjectKind::charge, "ch_1", PayState::succeeded, 100, 1000);
  CHECK(ledger.apply(ch).changed);
  CHECK_FALSE(ledger.apply(ch).changed);
  ch.amount_refunded = 50;
  CHECK(ledger.apply(ch).changed);
  CHECK_FALSE(ledger.find("ch_missing").has_value());
}

TEST_CASE("ledger: distinct observations and the time span are kept, order-free", "[ledger]") {
  // What a revision counts (ENGINE.md, "Revisions"): every distinct observation, even one that
  // changes no merged field; never a repeated one.
  auto cs = obs(ObjectKind::checkout_session, "cs_1", PayState::succeeded, 4900, 3000);
  cs.payment_intent = "pi_1";
  cs.created = 2500;
  auto ch = obs(ObjectKind::charge, "ch_1", PayState::succeeded, 4900, 1000);
  ch.payment_intent = "pi_1";
  auto captured = ch;  // charge.captured with the same snapshot: the same observation
  auto pi = obs(ObjectKind::payment_intent, "pi_1", PayState::succeeded, 4900, 4000);
  std::vector<Observation> all{cs, ch, captured, pi};
  std::mt19937 rng(5);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(all.begin(), all.end(), rng);
    MemoryStateStore store;
    PaymentLedger ledger(store, "acme/live");
    for (const auto& o : all) (void)ledger.apply(o);
    const auto s = summarize(ledger.facts(*ledger.find("pi_1")));
    CHECK(s.inputs.size() == 3);
    CHECK(s.earliest == 1000);
    CHECK(s.paid_at == 1000);
    CHECK(s.latest == 4000);
  }
  MemoryStateStore store;
  PaymentLedger ledger(store, "acme/live");
  CHECK(ledger.apply(ch).changed);
  CHECK_FALSE(ledger.apply(captured).changed);
  auto later = ch;
  later.created = 900;  // an earlier creation time: a new observation, merged by min
  CHECK(ledger.apply(later).changed);
  const auto s = summarize(ledger.facts(*ledger.find("ch_1")));
  CHECK(s.inputs.size() == 2);
  CHECK(s.earliest == 900);
  CHECK(s.latest == 1000);
}

TEST_CASE("subscriptions: the reverse index names the subscriptions of an invoice", "[ledger]") {
  MemoryStateStore store;
  PaymentLedger ledger(store, "acme/live");
  SubscriptionFacts a;
  a.first_invoices = {"in_1"};
  a.first_sessions = {"cs_1"};
  CHECK(ledger.add_to_subscription("sub_1", a));
  SubscriptionFacts b;
  b.invoices = {"in_2"};
  CHECK(ledger.add_to_subscription("sub_1", b));
  CHECK(ledger.subscriptions_of("in_1") == std::set<std::string>{"sub_1"});
  CHECK(ledger.subscriptions_of("cs_1") == std::set<std::string>{"sub_1"});
  CHECK(ledger.subscriptions_of("in_2") == std::set<std::string>{"sub_1"});
  CHECK(ledger.subscriptions_of("in_3").empty());
}

TEST_CASE("ledger: live and test are separate ledgers", "[ledger]") {
  MemoryStateStore store;
  PaymentLedger live(store, "acme/live"), test(store, "acme/test");
  (void)test.apply(obs(ObjectKind::charge, "ch_1", PayState::succeeded, 100, 1000));
  CHECK_FALSE(live.find("ch_1").has_value());
  CHECK(test.find("ch_1").has_value());
}

TEST_CASE("ledger: corrupt state is an error, not a silent reset", "[ledger]") {
  MemoryStateStore store;
  store.put("pay/acme/live/ch_1", "Rgarbage");
  PaymentLedger ledger(store, "acme/live");
  CHECK_THROWS_AS(ledger.facts("ch_1"), std::runtime_error);
  store.put("pay/acme/live/ch_2", "Pch_3");  // a pointer to nothing
  CHECK_THROWS_AS(ledger.find("ch_2"), std::runtime_error);
}

TEST_CASE("subscriptions: facts are unions", "[ledger]") {
  MemoryStateStore store;
  PaymentLedger ledger(store, "acme/live");
  SubscriptionFacts a;
  a.first_invoices = {"in_1"};
  a.invoices = {"in_1"};
  CHECK(ledger.add_to_subscription("sub_1", a));
  CHECK_FALSE(ledger.add_to_subscription("sub_1", a));
  SubscriptionFacts b;
  b.invoices = {"in_2"};
  b.visitor_ids = {"v"};
  CHECK(ledger.add_to_subscription("sub_1", b));
  const auto s = ledger.subscription("sub_1");
  CHECK(s.invoices == std::set<std::string>{"in_1", "in_2"});
  CHECK(s.first_invoices == std::set<std::string>{"in_1"});
  CHECK(s.visitor_ids == std::set<std::string>{"v"});
}

TEST_CASE("identity graph: components, members, and which payments gained visitors", "[identity]") {
  MemoryStateStore store;
  IdentityGraph g(store, "acme/live");
  using G = IdentityGraph;
  CHECK(g.link({G::stripe("pi_1"), G::stripe("cus_1"), G::email("h1")}).empty());
  CHECK(g.members(G::email("h1")).payments == std::set<std::string>{"pi_1"});
  CHECK(g.members(G::email("h1")).visitors.empty());
  // An identify joins a visitor to the payer's email: pi_1 gained a visitor.
  CHECK(g.link({G::visitor("v1"), G::email("h1")}) == std::set<std::string>{"pi_1"});
  // Another payment of the same customer joins too; pi_1's visitors did not change.
  CHECK(g.link({G::stripe("pi_2"), G::stripe("cus_1")}).empty());
  const auto m = g.members(G::visitor("v1"));
  CHECK(m.payments == std::set<std::string>{"pi_1", "pi_2"});
  CHECK(m.visitors == std::set<std::string>{"v1"});
  CHECK(g.link({G::visitor("v1"), G::email("h1")}).empty());  // nothing new
  CHECK(g.members(G::visitor("nobody")).visitors.empty());

  SECTION("membership does not depend on the order edges arrive in") {
    std::vector<std::vector<std::string>> edges{
        {G::visitor("a"), G::email("x")},       {G::visitor("b"), G::email("x")},
        {G::stripe("pi_9"), G::email("y")},     {G::visitor("c"), G::session("s")},
        {G::stripe("pi_9"), G::session("s")},   {G::visitor("b"), G::stripe("cus_9")},
        {G::stripe("pi_8"), G::stripe("cus_9")}};
    std::mt19937 rng(3);
    for (int round = 0; round < 50; ++round) {
      std::shuffle(edges.begin(), edges.end(), rng);
      MemoryStateStore s;
      IdentityGraph graph(s, "acme/live");
      for (const auto& e : edges) (void)graph.link(e);
      CHECK(graph.members(G::visitor("a")).visitors == std::set<std::string>{"a", "b"});
      CHECK(graph.members(G::visitor("a")).payments == std::set<std::string>{"pi_8"});
      CHECK(graph.members(G::stripe("pi_9")).visitors == std::set<std::string>{"c"});
    }
  }
}

TEST_CASE("visitor timelines: sessions, duplicates, bound", "[visitors]") {
  MemoryStateStore store;
  VisitorTimelines t(store, "acme");
  Touch a;
  a.at = 1'000'000;
  a.source = "newsletter";
  a.medium = "email";
  Touch b = Touch{};
  b.at = a.at + 60'000;  // a direct pageview a minute later: the same session
  auto r = t.add_pageview("v", "e1", a);
  CHECK(r.new_session);
  CHECK(t.add_pageview("v", "e1", a).duplicate);
  CHECK_FALSE(t.add_pageview("v", "e2", b).new_session);
  Touch c = b;
  c.at = b.at + 31 * 60'000;  // idle over 30 minutes
  CHECK(t.add_pageview("v", "e3", c).new_session);
  CHECK(t.touches("v").size() == 2);
  CHECK(t.touches("v").front() == a);
  for (int i = 0; i < 600; ++i) {
    Touch x;
    x.at = c.at + (i + 1) * 3'600'000LL;
    (void)t.add_pageview("v", "f" + std::to_string(i), x);
  }
  CHECK(t.touches("v").size() == VisitorTimelines::kMaxSessions);
  // Sessions keep the numbers they started with when older ones are dropped.
  const auto kept = t.sessions("v");
  REQUIRE(kept.size() == VisitorTimelines::kMaxSessions);
  CHECK(kept.back().number == 2 + 600 - 1);
  CHECK(kept.front().number == 2 + 600 - VisitorTimelines::kMaxSessions);
  CHECK(kept.back().touch == t.touches("v").back());
}
