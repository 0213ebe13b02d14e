// libFuzzer target: the Stripe-Signature header. The input is split into a header and a body at
// the first newline. Whatever the header, verification returns a verdict without crashing; a
// header accepted as valid must carry the true signature of the body; and the true signature,
// added to any header, is accepted unless the header carries a malformed t.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/stripe_signature.hpp"

using namespace revtrace::ingest;

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}
constexpr std::int64_t kNow = 1'700'000'000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const std::string_view header = input.substr(0, newline);
  const std::string_view body = newline == std::string_view::npos ? std::string_view{} : input.substr(newline + 1);
  const std::vector<std::string> secrets{"whsec_a", "whsec_b"};
  const StripeSignatureVerifier verifier(300);

  const auto verdict = verifier.verify(header, body, secrets, kNow);
  require(!describe(verdict).empty());
  if (verdict == SignatureResult::valid) {
    // Some t in the header makes one of the secrets' signatures appear in it.
    bool found = false;
    std::string_view rest = header;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      auto item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.starts_with("t=")) continue;
      const std::int64_t t = std::strtoll(std::string(item.substr(2)).c_str(), nullptr, 10);
      for (const auto& s : secrets) found = found || header.find(stripe_v1_signature(s, t, body)) != std::string_view::npos;
    }
    require(found);
  }
  // A correctly signed header for this body is valid.
  const std::string good = "t=" + std::to_string(kNow) + ",v1=" + stripe_v1_signature("whsec_b", kNow, body);
  require(verifier.verify(good, body, secrets, kNow) == SignatureResult::valid);
  // The fuzzed header's items appended after a good t and v1 do not hide the match unless they
  // bring a t of their own.
  if (header.find("t=") == std::string_view::npos) {
    require(verifier.verify(good + "," + std::string(header), body, secrets, kNow) == SignatureResult::valid);
  }
  return 0;
}
