#pragma once
// AttributionEngine — the façade the processor calls: one input record in, an Outcome out.
//
// Pure: no Kafka, RocksDB, clocks or sockets. Everything it remembers goes through StateStore, and
// all time comes from the records, so a replay of the same input topics rebuilds the same state
// and the same results. See ENGINE.md for state keys, the canonical payment key, evidence
// resolution, revisions and the determinism argument.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "processor/domain/models.hpp"
#include "processor/domain/state_store.hpp"
#include "processor/domain/touch.hpp"

namespace revtrace::domain {

struct SiteSettings {
  std::string site_id;
  Millis lookback = kDefaultLookback;  // touches older than paid_at - lookback do not count
  // An anonymous visitor idle for lookback + idle_margin of event time expires (ENGINE.md,
  // "Bounds"): the margin is how late a Stripe record may come and still see its touches.
  Millis idle_margin = 30LL * 24 * 3600 * 1000;
  std::vector<std::string> visitor_id_keys{"revtrace_visitor_id"};  // Stripe metadata keys
  std::vector<std::string> session_id_keys{"revtrace_session_id"};
  SiteRules rules;
  std::string email_hash_key;  // HMAC key for email hashes; empty: "revtrace-email:<site_id>"
};

// One attributed-revenue record to produce: key "<site_id>/<payment_key>", value the JSON record.
// A tombstone (value empty) retires a key that stopped being a payment's canonical key, because a
// later link showed it is part of another payment (ENGINE.md, "Aliases"): the producer must send
// it with a null value, so the compacted topic keeps exactly one record per payment.
struct OutputRecord {
  std::string key;
  std::string value;
  bool tombstone = false;
};

struct Outcome {
  // applied: state updated (zero or more records to produce); skipped: an unused Stripe event
  // type or a duplicate (count it); invalid: dead-letter it with `reason`.
  enum class Kind { applied, skipped, invalid } kind = Kind::applied;
  // Why a record was skipped: a Stripe event type revtrace does not use, a Stripe object that
  // carries no payment (a setup-mode checkout session), or a duplicate (a re-delivery, Stripe's
  // "two events for one change", a repeated pageview or redirect).
  enum class Skip { none, unused_type, no_payment, duplicate } skip = Skip::none;
  std::string reason;
  std::vector<OutputRecord> revenue;
  // Records among `revenue` whose revision could not be the payment's basis size because their
  // content changed while the basis did not grow (ENGINE.md, "Revisions": only possible when a
  // visitor's session cap dropped a touch a payment still used). Their revision is the previous
  // one + 1 instead, so no revision number is ever reused; expected to stay 0 — export it as a
  // counter and investigate if it is not.
  std::size_t forced_revisions = 0;
  // Anonymous visitors this record's watermark advance expired (their state was removed).
  std::size_t expired_visitors = 0;
};

class AttributionEngine {
 public:
  // `settings` is asked once per record for the record's site; the reference must stay valid
  // for the duration of that call.
  AttributionEngine(StateStore& store,
                    std::function<const SiteSettings&(std::string_view site_id)> settings);
  ~AttributionEngine();
  AttributionEngine(const AttributionEngine&) = delete;
  AttributionEngine& operator=(const AttributionEngine&) = delete;

  // A revtrace.web-events.v1 value (pageview, identify, custom).
  [[nodiscard]] Outcome on_web_event(std::string_view record_json);
  // A revtrace.checkout-redirects.v1 value.
  [[nodiscard]] Outcome on_checkout_redirect(std::string_view record_json);
  // A revtrace.stripe-events.v1 value (the Stripe body is its "payload" string).
  [[nodiscard]] Outcome on_stripe_event(std::string_view record_json);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace revtrace::domain
