#include "ingest/stripe_signature.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <vector>

namespace revtrace::ingest {

std::string_view describe(SignatureResult r) noexcept {
  switch (r) {
    case SignatureResult::valid: return "valid";
    case SignatureResult::missing_header: return "the Stripe-Signature header is missing";
    case SignatureResult::malformed_header:
      return "the Stripe-Signature header must be t=<unix seconds>,v1=<hex signature>";
    case SignatureResult::stale_timestamp:
      return "the Stripe-Signature timestamp is outside the tolerance (replayed or delayed)";
    case SignatureResult::no_match:
      return "no v1 signature matches any webhook secret of this site";
  }
  return "unknown";
}

std::string stripe_v1_signature(std::string_view secret, std::int64_t timestamp,
                                std::string_view body) {
  std::string signed_payload = std::to_string(timestamp) + ".";
  signed_payload += body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_payload.data()), signed_payload.size(), mac,
       &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * len, '0');
  for (unsigned i = 0; i < len; ++i) {
    hex[2 * i] = kHex[mac[i] >> 4];
    hex[2 * i + 1] = kHex[mac[i] & 0xf];
  }
  return hex;
}

SignatureResult StripeSignatureVerifier::verify(std::string_view header, std::string_view body,
                                                std::span<const std::string> secrets,
                                                std::int64_t now_seconds) const {
  if (header.empty()) return SignatureResult::missing_header;
  std::int64_t timestamp = 0;
  bool have_t = false;
  std::vector<std::string_view> v1;
  while (!header.empty()) {
    const auto comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    const auto key = item.substr(0, eq);
    const auto value = item.substr(eq + 1);
    if (key == "t") {
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), timestamp);
      if (ec != std::errc{} || ptr != value.data() + value.size()) {
        return SignatureResult::malformed_header;
      }
      have_t = true;
    } else if (key == "v1") {
      v1.push_back(value);
    }  // v0 and unknown schemes are ignored
  }
  if (!have_t || v1.empty()) return SignatureResult::malformed_header;
  bool match = false;
  for (const auto& secret : secrets) {
    const std::string expected = stripe_v1_signature(secret, timestamp, body);
    for (const auto& candidate : v1) {
      // Constant time over the expected length; the length itself is public (64 hex digits).
      if (candidate.size() == expected.size() &&
          CRYPTO_memcmp(candidate.data(), expected.data(), expected.size()) == 0) {
        match = true;
      }
    }
  }
  if (!match) return SignatureResult::no_match;
  if (tolerance_ > 0 && now_seconds - timestamp > tolerance_) return SignatureResult::stale_timestamp;
  return SignatureResult::valid;
}

}  // namespace revtrace::ingest
