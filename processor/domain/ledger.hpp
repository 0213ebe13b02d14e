#pragma once
// PaymentLedger — counts every Stripe payment exactly once, whatever subset, order or duplication
// of events arrives.
//
// A payment is a set of Stripe objects (checkout session, payment intent, charge(s), invoice,
// invoice payment) that events link to each other. The ledger keeps a union-find over their ids
// in the state store: every id maps to its payment's root, and the root holds PaymentFacts, the
// merged Observation of each object. Because observations merge commutatively and idempotently,
// and union-find merges are order-free, the facts of a payment after a set of events do not depend
// on the order the events came in — and neither does anything derived from them (summarize()).
//
// One ledger is one site in one mode (live or test): test-mode objects never join live payments.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "processor/domain/state_store.hpp"
#include "processor/domain/stripe_event.hpp"

namespace revtrace::domain {

struct PaymentFacts {
  std::map<std::string, Observation> objects;  // by Stripe id
  // Fingerprints (16 bytes of SHA-256 of the encoded Observation) of every distinct observation
  // merged into this payment. The merged `objects` cannot tell how many distinct observations
  // made them (merges keep minima and unions); this set can, and it only grows — it is part of a
  // payment's revision number (ENGINE.md, "Revisions").
  std::set<std::string> inputs;
  // The latest paid_at/created time of any observation merged (0: none). Only grows; it bounds
  // from above every paid_at the payment has had or will have, which makes the set of session
  // touches counted in a revision monotone (ENGINE.md).
  Millis latest = 0;
  bool operator==(const PaymentFacts&) const = default;
};
void merge(PaymentFacts& into, const PaymentFacts& from);
[[nodiscard]] std::string encode(const PaymentFacts& f);

// The canonical payment key: the invoice id if the payment has an invoice, else its payment
// intent, else its charge, else its checkout session (the smallest id of that kind if, oddly,
// there are several). Why the invoice first: every event about an invoice payment carries the
// invoice id before basil (charge.invoice, payment_intent.invoice, checkout session.invoice), and
// from basil on the session, the invoice and invoice_payment.paid carry it, so subscription
// payments get their final key from the first event in almost every order; a one-off payment's
// events all carry its payment intent. When a later link does change the key (a basil charge seen
// before invoice_payment.paid links it to its invoice), the engine retires the old key (ENGINE.md).
[[nodiscard]] std::string canonical_payment_key(const PaymentFacts& f);

// Everything the engine needs from a payment's facts, derived deterministically.
struct PaymentSummary {
  std::string key;
  bool succeeded = false;   // some object shows the payment succeeded
  std::int64_t amount = 0;  // gross minor units
  std::string currency;
  std::int64_t refunded = 0;  // cumulative, 0..amount
  Millis paid_at = 0;         // earliest success; when not succeeded, earliest time seen
  // Output ids (smallest of each kind; empty = unknown).
  std::string checkout_session, payment_intent, charge, invoice, subscription, customer,
      payment_link;
  std::string email_hash;  // preferred payer email hash (session > invoice > charge > intent)
  std::set<std::string> payment_ids, customers, email_hashes, visitor_ids, session_ids,
      client_reference_ids;
  std::map<std::string, std::string> campaign;  // from a Payment Link's session metadata
  Millis campaign_at = 0;                       // when that session was created
  std::string billing_reason;                   // of the invoice, if any
  bool subscription_checkout = false;   // a subscription-mode checkout session is part of it
  std::set<std::string> subscriptions;  // every subscription id its objects name
  std::set<std::string> inputs;         // PaymentFacts::inputs
  // The earliest and latest time any observation showed (paid_at or created; 0 if none):
  // earliest <= paid_at <= latest, and as observations arrive earliest only falls and latest only
  // rises, so [earliest - lookback, latest] only widens (the touch window of a revision basis).
  Millis earliest = 0;
  Millis latest = 0;

  [[nodiscard]] bool is_revenue() const noexcept { return succeeded && amount > 0; }
};
[[nodiscard]] PaymentSummary summarize(const PaymentFacts& f);

// What the ledger knows about one subscription: which invoice/session started it, its invoices,
// and revtrace ids from its metadata. All sets: merging is a union.
struct SubscriptionFacts {
  std::set<std::string> first_invoices;  // billing_reason subscription_create, session.invoice,
                                         // latest_invoice at creation
  std::set<std::string> first_sessions;  // subscription-mode checkout sessions that created it
  std::set<std::string> invoices;
  std::set<std::string> visitor_ids, session_ids, customers;
  bool operator==(const SubscriptionFacts&) const = default;
};

class PaymentLedger {
 public:
  // `scope` is "<site>/<mode>"; state keys are "pay/<scope>/<id>" and "sub/<scope>/<id>".
  PaymentLedger(StateStore& store, std::string scope);

  struct Applied {
    std::string root;      // the payment's root id after the merge
    bool changed = false;  // the payment's facts or grouping changed
  };
  // Adds one observation of a payment object (not a subscription): joins every payment id it
  // names into one payment and merges the observation into that payment's facts.
  [[nodiscard]] Applied apply(const Observation& o);

  // Root of the payment containing `id`, or nullopt if no event named it yet.
  [[nodiscard]] std::optional<std::string> find(std::string_view id) const;
  // Facts stored at a root (empty for an unknown id).
  [[nodiscard]] PaymentFacts facts(std::string_view root) const;

  [[nodiscard]] SubscriptionFacts subscription(std::string_view sub_id) const;
  // Unions `add` into the subscription's facts; true when that changed them. Also indexes every
  // invoice / checkout session id of the subscription ("sid/<scope>/<id>"), so that a payment
  // whose own objects do not (yet) name the subscription — a pre-basil charge naming only the
  // first invoice — still finds the subscription it starts (subscriptions_of).
  bool add_to_subscription(std::string_view sub_id, const SubscriptionFacts& add);
  // The subscriptions whose first_invoices / first_sessions / invoices name payment id `id`.
  [[nodiscard]] std::set<std::string> subscriptions_of(std::string_view id) const;

 private:
  [[nodiscard]] std::string node_key(std::string_view id) const;
  [[nodiscard]] std::string index_key(std::string_view id) const;
  StateStore& store_;
  std::string scope_;
};

}  // namespace revtrace::domain
