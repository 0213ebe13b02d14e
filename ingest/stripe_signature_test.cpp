// The signature rules of ../shared/docs/stripe.md, case by case. The independent oracle (headers
// made by Stripe's own npm library) is in tests/ingest/gateway_test.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "ingest/stripe_signature.hpp"

using revtrace::ingest::SignatureResult;
using revtrace::ingest::StripeSignatureVerifier;
using revtrace::ingest::stripe_v1_signature;

namespace {
const std::string kBody = R"({"id":"evt_1","object":"event"})";
const std::vector<std::string> kSecrets{"whsec_old", "whsec_new"};
constexpr std::int64_t kNow = 1'700'000'000;
}  // namespace

TEST_CASE("stripe signature: known HMAC-SHA256 vector", "[signature]") {
  // echo -n '1700000000.{"id":"evt_1","object":"event"}' | openssl dgst -sha256 -hmac whsec_new
  CHECK(stripe_v1_signature("whsec_new", kNow, kBody) ==
        "c15330950069e52feb112c7c495d04bcd2bef3e2784ee078587728d546bb99b6");
}

TEST_CASE("stripe signature: the matrix", "[signature]") {
  const StripeSignatureVerifier v(300);
  const auto good = stripe_v1_signature("whsec_new", kNow, kBody);
  const auto old = stripe_v1_signature("whsec_old", kNow, kBody);
  const auto other = stripe_v1_signature("whsec_other", kNow, kBody);
  const auto t = "t=" + std::to_string(kNow);
  struct Case {
    std::string header;
    std::string body;
    std::int64_t now;
    SignatureResult expected;
  };
  const std::vector<Case> cases{
      {t + ",v1=" + good, kBody, kNow, SignatureResult::valid},
      {t + ",v1=" + old, kBody, kNow, SignatureResult::valid},                 // any configured secret
      {t + ",v1=" + other + ",v1=" + good, kBody, kNow, SignatureResult::valid},  // any v1
      {t + ",v0=" + other + ",v1=" + good, kBody, kNow, SignatureResult::valid},  // v0 ignored
      {"v1=" + good + "," + t, kBody, kNow, SignatureResult::valid},              // order free
      {t + ", v1=" + good, kBody, kNow, SignatureResult::valid},                  // spaces
      {t + ",v1=" + good, kBody, kNow + 300, SignatureResult::valid},             // at the tolerance
      {t + ",v1=" + good, kBody, kNow - 1000, SignatureResult::valid},            // clock behind
      {t + ",v1=" + good, kBody, kNow + 301, SignatureResult::stale_timestamp},
      {t + ",v1=" + good, kBody + " ", kNow, SignatureResult::no_match},  // one byte more
      {t + ",v1=" + other, kBody, kNow, SignatureResult::no_match},
      {t + ",v0=" + good, kBody, kNow, SignatureResult::malformed_header},  // v0 alone is no v1
      {t, kBody, kNow, SignatureResult::malformed_header},
      {"v1=" + good, kBody, kNow, SignatureResult::malformed_header},
      {"t=abc,v1=" + good, kBody, kNow, SignatureResult::malformed_header},
      {"t=" + std::to_string(kNow + 1) + ",v1=" + good, kBody, kNow, SignatureResult::no_match},
      {t + ",v1=" + good.substr(0, 63), kBody, kNow, SignatureResult::no_match},
      {t + ",v1=" + std::string(64, 'A'), kBody, kNow, SignatureResult::no_match},
      {"", kBody, kNow, SignatureResult::missing_header},
      {",,,", kBody, kNow, SignatureResult::malformed_header},
  };
  for (const auto& c : cases) {
    INFO("header: " << c.header << " now: " << c.now);
    CHECK(v.verify(c.header, c.body, kSecrets, c.now) == c.expected);
  }
  // Upper-case hex is not what Stripe sends: no match.
  std::string upper = good;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  CHECK(v.verify(t + ",v1=" + upper, kBody, kSecrets, kNow) == SignatureResult::no_match);
  // No secrets configured: nothing matches.
  CHECK(v.verify(t + ",v1=" + good, kBody, {}, kNow) == SignatureResult::no_match);
  // A tolerance of 0 disables the recency check.
  CHECK(StripeSignatureVerifier(0).verify(t + ",v1=" + good, kBody, kSecrets, kNow + 100000) ==
        SignatureResult::valid);
}
