#pragma once
// Reading Stripe events: from a revtrace.stripe-events.v1 record (whose "payload" is the raw
// webhook body) to one Observation — the payment-relevant facts one event shows about one Stripe
// object — plus the payer's email addresses for the engine to hash.
//
// Observations are the ledger's unit of knowledge. Several events show the same object
// (charge.succeeded then charge.refunded; Stripe's duplicate "two events for one change"), so
// merge() combines two observations of one object, and it is commutative, associative and
// idempotent: whatever subset, order or duplication of events arrives, the merged observation is
// the same value. Every choice between conflicting values is therefore a fixed rule (max, min,
// union, "succeeded beats failed beats pending"), never "the later one".
//
// Which fields matter per event type, and the pre-/post-basil (2025-03-31) invoice shapes, follow
// ../../../shared/docs/stripe.md (see ENGINE.md here for the full table).
#include <simdjson.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "processor/domain/codec.hpp"
#include "processor/domain/touch.hpp"

namespace revtrace::domain {

// The Stripe object kinds the engine reads.
enum class ObjectKind : std::uint8_t {
  checkout_session,
  payment_intent,
  charge,
  invoice,
  invoice_payment,
  subscription,
};

// Payment state an object shows. Merging keeps the highest: a succeeded snapshot beats a failed
// one (a session's async failure cannot follow its success), and both beat "pending" (an unpaid
// checkout, an authorised but uncaptured charge).
enum class PayState : std::uint8_t { none = 0, pending = 1, failed = 2, succeeded = 3 };

// The kind of payment object a Stripe id names, from its prefix (Stripe ids are prefixed by type).
enum class PaymentIdKind : std::uint8_t {
  invoice,
  payment_intent,
  charge,
  checkout_session,
  invoice_payment,
  other
};
[[nodiscard]] PaymentIdKind payment_id_kind(std::string_view stripe_id) noexcept;

struct Observation {
  ObjectKind kind = ObjectKind::charge;
  std::string id;
  PayState state = PayState::none;
  std::int64_t amount = 0;           // minor units paid (0 unless succeeded)
  std::string currency;              // lower-case ISO 4217
  Millis paid_at = 0;                // when it succeeded; 0 if not
  Millis created = 0;                // the object's own creation time
  std::int64_t amount_refunded = 0;  // charges: cumulative, as Stripe reports it
  // Links to other objects; empty when unknown or not applicable.
  std::string checkout_session, payment_intent, charge, invoice, subscription, customer,
      payment_link;
  std::string billing_reason;  // invoices
  std::string mode;            // checkout sessions: payment | subscription | setup
  std::string client_reference_id;
  std::set<std::string> visitor_ids;  // from metadata under the site's visitor-id keys
  std::set<std::string> session_ids;  // from metadata under the site's session-id keys
  // Campaign a revtrace Payment Link names (checkout sessions created by a link): field name
  // ("source", "medium", "campaign", "term", "content") -> value.
  std::map<std::string, std::string> campaign;
  std::set<std::string> email_hashes;  // filled by the engine; the raw email is never stored

  // Every Stripe id this observation names, its own first: the ids that identify the payment
  // (checkout session, payment intent, charge, invoice, invoice payment) and, separately, the
  // other linked objects.
  [[nodiscard]] std::vector<std::string> payment_ids() const;

  bool operator==(const Observation&) const = default;
};

// Combines two observations of the same object (same kind and id). Commutative, associative,
// idempotent.
void merge(Observation& into, const Observation& from);

void encode(codec::Writer& w, const Observation& o);
[[nodiscard]] Observation decode_observation(codec::Reader& r);

// The Stripe event types revtrace uses; every other type is skipped.
[[nodiscard]] bool is_used_event_type(std::string_view type) noexcept;

// Metadata key names that carry revtrace ids (configurable per site so users migrating from
// other tools keep working).
struct MetadataKeys {
  const std::vector<std::string>& visitor_id_keys;
  const std::vector<std::string>& session_id_keys;
};

struct StripeEvent {
  std::string site_id;
  std::string event_id;
  std::string type;
  bool livemode = false;
  Millis created = 0;  // event creation, ms
  Observation object;
  std::vector<std::string> emails;  // payer emails, trimmed + lower-cased, for the engine to hash
};

struct StripeEventParse {
  enum class Kind { ok, unused, ignored, invalid } kind = Kind::invalid;
  std::string reason;  // for unused / ignored / invalid: precise, names the field
  StripeEvent event;
};

// Parses a revtrace.stripe-events.v1 record value and the Stripe event in its "payload" string.
// invalid: not JSON, a required field missing or ill-typed, a payload that is not a Stripe event
// or disagrees with the record's envelope; unused: an event type revtrace does not use; ignored:
// a used type that carries no payment (a setup-mode checkout session).
[[nodiscard]] StripeEventParse parse_stripe_record(std::string_view record_json,
                                                   const MetadataKeys& keys);
// The same for a record already parsed (`root`, which must outlive the call), with the parser for
// its payload (reused across calls: its buffers are allocated once).
[[nodiscard]] StripeEventParse parse_stripe_record(simdjson::dom::element root,
                                                   const MetadataKeys& keys,
                                                   simdjson::dom::parser& payload_parser);

// Email normalisation before hashing: trim ASCII whitespace, lower-case ASCII.
[[nodiscard]] std::string normalise_email(std::string_view email);

}  // namespace revtrace::domain
