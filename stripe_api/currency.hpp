#pragma once
// Currencies and amounts as Stripe expects them: a lower-case ISO 4217 code and an integer amount
// in the currency's minor unit, with Stripe's exceptions (../../shared/docs/stripe.md):
// - zero-decimal currencies (JPY, KRW, ...): the amount is in whole units;
// - three-decimal currencies (BHD, JOD, KWD, OMR, TND): the last digit must be 0;
// - ISK and UGX are sent as two-decimal values that must be multiples of 100 (UGX is also listed
//   as zero-decimal: the multiple-of-100 rule is what Stripe enforces on the wire).
#include <cstdint>
#include <string>
#include <string_view>

namespace revtrace::stripe_api {

// Whether `code` (any case) is an active ISO 4217 currency code.
[[nodiscard]] bool is_iso4217(std::string_view code) noexcept;

// Digits after the decimal point Stripe uses in amounts of `code` (0, 2 or 3).
[[nodiscard]] int stripe_minor_digits(std::string_view code) noexcept;

// The normalised (lower-case) code, or an error naming what is wrong with `code` / `amount`.
struct CurrencyCheck {
  std::string currency;  // lower-case, when valid
  std::string error;     // empty when valid
  [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};
// Validates an amount in minor units for a one-off price: positive, at most Stripe's 8-digit
// maximum (99,999,999), and following the currency's rule above.
[[nodiscard]] CurrencyCheck check_amount(std::int64_t amount, std::string_view currency);

}  // namespace revtrace::stripe_api
