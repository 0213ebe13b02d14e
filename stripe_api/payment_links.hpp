#pragma once
// Payment Links that carry their attribution (issue 8): what revtrace sends to
// `POST /v1/payment_links`, and the revtrace.payment-links.v1 record of each created link.
//
// The link's attribution travels in Stripe metadata, which Stripe copies onto what the link
// creates: `metadata` onto each Checkout Session, `payment_intent_data.metadata` onto its
// PaymentIntents (one-off prices), `subscription_data.metadata` onto its Subscriptions (recurring
// prices; and so onto every invoice's subscription snapshot). Keys (read by the processor, see
// processor/domain/ENGINE.md):
//   revtrace_site, revtrace_link (revtrace's own id of the link: the plink_ id is not known when
//   the metadata is sent), revtrace_campaign, revtrace_source, revtrace_medium,
//   revtrace_customer_email (the named customer; hashed by the processor, never kept raw there).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "stripe_api/client.hpp"

namespace revtrace::stripe_api {

struct PaymentLinkSpec {
  std::string site_id;
  std::int64_t amount = 0;  // minor units
  std::string currency;     // any case; validated against ISO 4217 and Stripe's rules
  std::string product;      // product name shown on the payment page
  std::int64_t quantity = 1;
  std::string interval;     // "" (one-off) or day | week | month | year (a subscription)
  std::string campaign, source, medium;
  std::string customer_email;
  std::string redirect_url;  // after payment; session_id={CHECKOUT_SESSION_ID} is appended
};

struct PreparedLink {
  Form form;                // the POST /v1/payment_links parameters
  std::string link_id;      // revtrace_link: "rtl_" + 24 hex digits
  std::string currency;     // normalised
  std::string redirect_url; // as sent, placeholder included
  std::string error;        // non-empty: the spec is invalid (nothing to send)
  std::string param;        // with an error: the parameter at fault (amount, currency, product,
                            // quantity, interval, campaign, source, medium, customer_email,
                            // redirect_url, site), as the query API names it in its 400
  [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};

// Validates `spec` and builds the request. `idempotency_key` also seeds the revtrace link id, so a
// retried create (same key) yields the same metadata.
[[nodiscard]] PreparedLink prepare_payment_link(const PaymentLinkSpec& spec,
                                                std::string_view idempotency_key);

// `url` with `session_id={CHECKOUT_SESSION_ID}` added to its query (kept, before any fragment);
// nullopt when `url` is not an absolute http(s) URL.
[[nodiscard]] std::optional<std::string> with_session_id_placeholder(std::string_view url);

struct CreatedLink {
  std::string id;   // plink_...
  std::string url;  // https://buy.stripe.com/...
  bool livemode = false;
  bool active = true;
};
// Reads Stripe's answer; nullopt when it is not a payment_link object with id and url.
[[nodiscard]] std::optional<CreatedLink> parse_created_link(std::string_view body);

// Lower-case hex HMAC-SHA256 of the trimmed, lower-cased email under `key`: the same hash the
// processor keeps (processor/domain/hashing.hpp), so a link's customer can be matched without the
// address. `key` empty = the processor's default "revtrace-email:<site>".
[[nodiscard]] std::string customer_email_hash(std::string_view key, std::string_view site_id,
                                              std::string_view email);

// The revtrace.payment-links.v1 record (schemas/revtrace.payment-links.v1.schema.json).
[[nodiscard]] std::string payment_link_record(const PaymentLinkSpec& spec,
                                              const PreparedLink& prepared,
                                              const CreatedLink& created,
                                              std::int64_t created_at_ms,
                                              std::string_view email_hash_key);

// Creates the link: validate, POST with the idempotency key, read the answer.
struct CreateOutcome {
  PreparedLink prepared;
  std::optional<CreatedLink> link;
  ApiResult api;      // the Stripe call (not made when the spec is invalid)
  std::string error;  // empty on success: the spec's problem or the API's, described
};
[[nodiscard]] CreateOutcome create_payment_link(const StripeClient& client,
                                                const PaymentLinkSpec& spec,
                                                std::string idempotency_key);

}  // namespace revtrace::stripe_api
