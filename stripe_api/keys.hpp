#pragma once
// Which of a site's Stripe API keys revtrace uses for what, and what it says when the
// configuration gives a path more power than it needs.
//
// - Reconcile only reads (lists checkout sessions, charges, invoices, refunds): its key,
//   `stripe_api_key`, should be a *restricted* key (`rk_test_...` / `rk_live_...`) with read
//   access to those resources and nothing else. A secret key (`sk_...`) works too, since Stripe
//   cannot be asked whether a key is read-only, but it can move money if it leaks: reconcile warns.
//   The prefix is all revtrace can check: a restricted key given write permissions is not noticed.
// - Payment Links need write access to Payment Links (and Prices/Products for inline prices):
//   `stripe_links_api_key`. When it is empty, `stripe_api_key` is used instead, with a warning:
//   that key is meant to be reconcile's read-only key, and Stripe refuses the create with it (403).
#include <cstdint>
#include <string>
#include <string_view>

namespace revtrace::stripe_api {

enum class KeyKind : std::uint8_t { restricted, secret, publishable, unknown };

// By Stripe's documented prefixes: rk_ restricted, sk_ secret, pk_ publishable.
[[nodiscard]] KeyKind api_key_kind(std::string_view key) noexcept;

// The warning for a reconcile run with `key`; empty when it is a restricted key.
[[nodiscard]] std::string reconcile_key_warning(std::string_view site, std::string_view key);

struct PaymentLinksKey {
  std::string key;      // empty: neither key is configured
  std::string warning;  // non-empty when stripe_api_key stands in for stripe_links_api_key
};
[[nodiscard]] PaymentLinksKey payment_links_key(std::string_view site,
                                                std::string_view links_api_key,
                                                std::string_view api_key);

}  // namespace revtrace::stripe_api
