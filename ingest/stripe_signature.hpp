#pragma once
// Verification of Stripe's `Stripe-Signature` header, exactly as ../shared/docs/stripe.md states:
// `t=<unix seconds>,v1=<hex>[,v1=...][,v0=...]`; the signed string is `<t>.<raw body>`; v1 is the
// lowercase hex HMAC-SHA256 keyed with the whole endpoint secret (whsec_ prefix included); only v1
// counts (v0 is ignored); valid when any v1 matches any configured secret, compared in constant
// time; rejected when now - t exceeds the tolerance.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace revtrace::ingest {

enum class SignatureResult : std::uint8_t {
  valid,
  missing_header,
  malformed_header,  // no t, a non-numeric t, or no v1
  stale_timestamp,
  no_match,
};

[[nodiscard]] std::string_view describe(SignatureResult r) noexcept;

class StripeSignatureVerifier {
 public:
  explicit StripeSignatureVerifier(std::int64_t tolerance_seconds) : tolerance_(tolerance_seconds) {}
  [[nodiscard]] SignatureResult verify(std::string_view header, std::string_view body,
                                       std::span<const std::string> secrets,
                                       std::int64_t now_seconds) const;

 private:
  std::int64_t tolerance_;
};

// Lowercase hex HMAC-SHA256 of `<timestamp>.<body>` (also used by tests and tools).
[[nodiscard]] std::string stripe_v1_signature(std::string_view secret, std::int64_t timestamp,
                                              std::string_view body);

}  // namespace revtrace::ingest
