// AttributionEngine under random stories: many visitors, identifies, pixel sessions, redirects,
// one-off payments in every event shape, refunds, delayed methods and a subscription — generated
// from a seed, then run in many interleavings and through a state rebuild. The latest record of
// every payment must be the same bytes (revision included) every time, and no revision number may
// ever carry two contents (ENGINE.md, "Revisions and determinism").
#include <catch2/catch.hpp>

#include "processor/domain/engine_test_support.hpp"

using namespace revtrace::domain;
using namespace revtrace::domain::testing;

namespace {

struct Story {
  std::vector<Input> web, others;
};

class StoryWriter {
 public:
  explicit StoryWriter(unsigned seed) : rng_(seed) {}

  Story write() {
    Story s;
    const int visitors = pick(2, 6);
    for (int v = 0; v < visitors; ++v) visitor_ids_.push_back("v" + std::to_string(v));
    for (int e = 0; e < 3; ++e) emails_.push_back("p" + std::to_string(e) + "@example.com");

    // Web events in log order: times mostly increasing, client clocks sometimes off.
    struct Timed {
      Millis at;
      Input in;
    };
    std::vector<Timed> web;
    int n = 0;
    for (const auto& v : visitor_ids_) {
      const int views = pick(1, 5);
      Millis at = T0 - pick(0, 100) * kDay + pick(0, 1000) * kMinute;
      for (int i = 0; i < views; ++i) {
        at += pick(0, 3) == 0 ? pick(1, 40) * kMinute : pick(1, 20) * kDay;
        const std::string id = "w" + std::to_string(n++);
        const std::string session = pick(0, 3) == 0 ? "sess-" + v + "-" + std::to_string(i) : "";
        if (session.empty() || pick(0, 1) == 0) {
          web.push_back({at, pageview(v, id, at, landing(), referrer(), session)});
        } else {
          web.push_back({at, custom_event(v, id, at, "signup", session)});
        }
        sessions_.push_back(session.empty() ? "sess-none" : session);
        if (pick(0, 4) == 0) {
          web.push_back({at + 1000, identify(v, id + "-id", at + 1000, one_of(emails_))});
        }
        if (pick(0, 9) == 0) web.push_back(web.back());  // the gateway delivered it twice
      }
    }
    std::stable_sort(web.begin(), web.end(),
                     [&](const Timed& a, const Timed& b) { return a.at < b.at; });
    for (std::size_t i = 1; i < web.size(); ++i) {
      if (pick(0, 7) == 0) std::swap(web[i - 1], web[i]);  // not quite time order
    }
    for (auto& t : web) s.web.push_back(std::move(t.in));

    const int payments = pick(2, 6);
    for (int p = 0; p < payments; ++p) one_off(p, s.others);
    if (pick(0, 1) == 0) subscription_story(s.others);
    return s;
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  const std::string& one_of(const std::vector<std::string>& v) {
    return v[static_cast<std::size_t>(pick(0, static_cast<int>(v.size()) - 1))];
  }

  std::string landing() {
    static const std::vector<std::string> urls{
        "https://shop.example/",
        "https://shop.example/pricing",
        "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
        "https://shop.example/?gclid=abc",
        "https://shop.example/?utm_source=facebook&utm_medium=paid_social",
        "https://shop.example/?ref=partner7",
        "https://shop.example/blog/post?utm_source=twitter",
    };
    return one_of(urls);
  }
  std::string referrer() {
    static const std::vector<std::string> refs{"", "", "https://www.google.com/",
                                               "https://news.ycombinator.com/item?id=1",
                                               "https://shop.example/pricing"};
    return one_of(refs);
  }

  bj::object evidence_metadata() {
    switch (pick(0, 4)) {
      case 0:
        return metadata({{"revtrace_visitor_id", one_of(visitor_ids_)}});
      case 1:
        return metadata({{"revtrace_session_id", one_of(sessions_)}});
      default:
        return {};
    }
  }

  // One one-off payment: a random subset of its events (checkout, charge, payment intent,
  // refunds, async success), with twins and redeliveries, and maybe a redirect.
  void one_off(int p, std::vector<Input>& out) {
    const std::string k = std::to_string(p);
    const Millis paid = T0 + pick(-10, 30) * kDay + pick(0, 600) * kMinute;
    const std::int64_t amount = pick(1, 20) * 100 + pick(0, 99);
    const bool delayed = pick(0, 5) == 0;
    CheckoutSpec cs;
    cs.id = "cs_test_" + k;
    cs.amount = amount;
    cs.payment_intent = "pi_" + k;
    cs.metadata = evidence_metadata();
    if (pick(0, 2) == 0) cs.email = one_of(emails_);
    if (pick(0, 3) == 0) cs.client_reference_id = one_of(visitor_ids_);
    cs.created = paid - pick(1, 30) * kMinute;
    cs.payment_status = delayed ? "unpaid" : "paid";
    std::vector<Input> events;
    if (pick(0, 4) != 0) {
      events.push_back(
          stripe_event("evt_cs" + k, "checkout.session.completed", paid, checkout_session(cs)));
      if (pick(0, 5) == 0) events.push_back(events.back());
    }
    if (delayed) {
      CheckoutSpec done = cs;
      done.payment_status = "paid";
      events.push_back(stripe_event("evt_as" + k, "checkout.session.async_payment_succeeded",
                                    paid + 2 * kDay, checkout_session(done)));
    }
    ChargeSpec ch;
    ch.id = "ch_" + k;
    ch.payment_intent = "pi_" + k;
    ch.amount = amount;
    ch.created = paid - 3000;
    if (pick(0, 3) == 0) ch.email = one_of(emails_);
    if (pick(0, 1) == 0) {
      events.push_back(stripe_event("evt_ch" + k, "charge.succeeded", paid - 2000, charge(ch)));
      if (pick(0, 4) == 0) {  // Stripe's two events for one change
        events.push_back(
            stripe_event("evt_ch" + k + "b", "charge.succeeded", paid - 1000, charge(ch)));
      }
    }
    if (pick(0, 1) == 0) {
      PaymentIntentSpec pi;
      pi.id = "pi_" + k;
      pi.amount = amount;
      pi.latest_charge = "ch_" + k;
      pi.created = paid - kMinute;
      pi.metadata = pick(0, 3) == 0 ? evidence_metadata() : bj::object{};
      events.push_back(
          stripe_event("evt_pi" + k, "payment_intent.succeeded", paid - 500, payment_intent(pi)));
    }
    for (int r = 1; r <= pick(0, 2); ++r) {
      ChargeSpec refunded = ch;
      refunded.refunded = std::min<std::int64_t>(amount, r * amount / 3 + 1);
      events.push_back(stripe_event("evt_rf" + k + "_" + std::to_string(r), "charge.refunded",
                                    paid + r * kDay, charge(refunded)));
    }
    if (pick(0, 2) == 0) {
      events.push_back(redirect(one_of(visitor_ids_), "rd" + k, cs.id, paid + 5000));
      if (pick(0, 2) == 0) {
        events.push_back(redirect(one_of(visitor_ids_), "rd" + k + "b", cs.id, paid + 9000));
      }
    }
    for (auto& e : events) out.push_back(std::move(e));
  }

  // A basil subscription bought through Checkout: a random subset of its events.
  void subscription_story(std::vector<Input>& out) {
    const Millis start = T0 + pick(-5, 5) * kDay;
    CheckoutSpec cs;
    cs.id = "cs_test_S";
    cs.mode = "subscription";
    cs.amount = 2900;
    cs.subscription = "sub_S";
    cs.invoice = "in_S1";
    cs.customer = "cus_S";
    cs.metadata = evidence_metadata();
    if (pick(0, 1) == 0) cs.email = one_of(emails_);
    cs.created = start - kMinute;
    if (pick(0, 2) != 0) {
      out.push_back(
          stripe_event("evt_s_cs", "checkout.session.completed", start, checkout_session(cs)));
    }
    if (pick(0, 1) == 0) {
      out.push_back(
          stripe_event("evt_s_sub", "customer.subscription.created", start - 2000,
                       subscription("sub_S", "cus_S", "in_S1", evidence_metadata(), start - 2000)));
    }
    for (int n = 1; n <= 3; ++n) {
      const std::string k = std::to_string(n);
      const Millis at = start + (n - 1) * 30 * kDay;
      InvoiceSpec inv;
      inv.id = "in_S" + k;
      inv.amount = 2900;
      inv.billing_reason = n == 1 ? "subscription_create" : "subscription_cycle";
      inv.subscription = "sub_S";
      inv.customer = pick(0, 1) == 0 ? "cus_S" : "";
      inv.paid_at = at;
      if (pick(0, 3) != 0) {
        out.push_back(stripe_event("evt_s_inv" + k, "invoice.paid", at, invoice(inv)));
      }
      if (pick(0, 1) == 0) {
        out.push_back(
            stripe_event("evt_s_inpay" + k, "invoice_payment.paid", at,
                         invoice_payment("inpay_S" + k, "in_S" + k, "pi_S" + k, 2900, at)));
      }
      if (pick(0, 1) == 0) {
        ChargeSpec ch;
        ch.id = "ch_S" + k;
        ch.payment_intent = "pi_S" + k;
        ch.amount = 2900;
        ch.created = at - 1000;
        out.push_back(stripe_event("evt_s_ch" + k, "charge.succeeded", at - 1000, charge(ch)));
      }
    }
  }

  std::mt19937 rng_;
  std::vector<std::string> visitor_ids_, emails_, sessions_;
};

}  // namespace

TEST_CASE("determinism: random stories, every interleaving, and a rebuild, byte for byte",
          "[engine][determinism][random]") {
  int payments = 0, records = 0;
  std::map<std::string, int> methods;
  for (unsigned seed = 1; seed <= 120; ++seed) {
    INFO("story seed " << seed);
    const auto story = StoryWriter(seed).write();
    std::mt19937 rng(seed * 31u + 7u);
    std::map<std::string, std::string> first;
    for (int order = 0; order < 8; ++order) {
      INFO("order " << order);
      const auto inputs = interleave(story.web, story.others, rng);
      Harness h;
      h.feed(inputs);
      if (order == 0) {
        first = h.latest;
        for (const auto& [key, value] : first) ++methods[View(value).str("method")];
        payments += static_cast<int>(first.size());
        records += static_cast<int>(h.emitted.size());
      } else {
        REQUIRE(h.latest == first);
      }
      if (order % 2 == 1) {
        // Live up to k, rebuilt in another interleaving with output suppressed, live again.
        const auto k = std::uniform_int_distribution<std::size_t>(0, inputs.size())(rng);
        Harness live;
        for (std::size_t i = 0; i < k; ++i) (void)live.feed(inputs[i]);
        std::vector<Input> web, others;
        for (std::size_t i = 0; i < k; ++i) {
          (inputs[i].topic == Topic::web ? web : others).push_back(inputs[i]);
        }
        Harness rebuilt;
        rebuilt.feed(interleave(web, others, rng), /*suppress=*/true);
        rebuilt.consumer = live.consumer;
        const auto before = live.consumer.highest;
        for (std::size_t i = k; i < inputs.size(); ++i) {
          for (const auto& rec : rebuilt.feed(inputs[i]).revenue) {
            auto it = before.find(rec.key);
            if (!rec.tombstone && it != before.end()) CHECK(revision_of(rec.value) > it->second);
          }
        }
        REQUIRE(rebuilt.latest == first);
      }
    }
  }
  // The stories are not trivial: payments were attributed and re-emitted.
  CHECK(payments > 300);
  CHECK(records > payments);
  for (const char* m : {"metadata", "checkout_redirect", "client_reference_id", "identity_graph",
                        "inherited", "unattributed"}) {
    INFO(m);
    CHECK(methods[m] > 5);
  }
}
