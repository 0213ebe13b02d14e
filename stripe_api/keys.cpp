#include "stripe_api/keys.hpp"

namespace revtrace::stripe_api {

KeyKind api_key_kind(std::string_view key) noexcept {
  if (key.starts_with("rk_")) return KeyKind::restricted;
  if (key.starts_with("sk_")) return KeyKind::secret;
  if (key.starts_with("pk_")) return KeyKind::publishable;
  return KeyKind::unknown;
}

std::string reconcile_key_warning(std::string_view site, std::string_view key) {
  const auto kind = api_key_kind(key);
  if (kind == KeyKind::restricted) return {};
  const std::string what = kind == KeyKind::secret        ? "a secret key (sk_...)"
                           : kind == KeyKind::publishable ? "a publishable key (pk_...)"
                                                          : "not a Stripe key of a known kind";
  return "site '" + std::string(site) + "': stripe_api_key is " + what +
         ", not a restricted key (rk_...). Reconcile only reads: give it a restricted key with "
         "read access to Checkout Sessions, Charges, Invoices, Refunds and Events, so that the key "
         "it keeps cannot move money";
}

PaymentLinksKey payment_links_key(std::string_view site, std::string_view links_api_key,
                                  std::string_view api_key) {
  if (!links_api_key.empty()) return {std::string(links_api_key), {}};
  if (api_key.empty()) return {};
  return {std::string(api_key),
          "site '" + std::string(site) +
              "' has no stripe_links_api_key: creating the Payment Link with stripe_api_key, "
              "which is meant to be reconcile's read-only restricted key (Stripe refuses the "
              "create with a read-only key). Configure stripe_links_api_key: a restricted key "
              "with write access to Payment Links, Prices and Products"};
}

}  // namespace revtrace::stripe_api
