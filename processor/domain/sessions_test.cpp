// The session rule: idle over 30 minutes, or a different (non-direct) traffic source.
#include "processor/domain/sessions.hpp"

#include <catch2/catch.hpp>

#include "processor/domain/channels.hpp"

using namespace revtrace::domain;

namespace {

constexpr Millis kSecond = 1000;
constexpr Millis kMinute = 60 * kSecond;
constexpr Millis T0 = 1744000000000;

const SiteRules kRules{.own_domains = {"shop.example"}};

Touch pageview(Millis at, const char* url, const char* referrer = "") {
  return extract_touch(PageviewFacts{url, referrer, at}, kRules);
}

}  // namespace

TEST_CASE("starts_new_session: the idle boundary", "[sessions]") {
  struct Row {
    Millis gap;
    bool new_session;
  };
  const Row rows[] = {
      {0, false},
      {29 * kMinute + 59 * kSecond, false},
      {30 * kMinute, false},  // "no gap over 30 minutes": exactly 30:00 continues
      {30 * kMinute + 1, true},
      {30 * kMinute + 1 * kSecond, true},
      {24 * 60 * kMinute, true},
      {-5 * kMinute, false},  // an earlier pageview arriving late is not idle
  };
  const auto campaign = pageview(T0, "https://shop.example/?utm_source=newsletter&utm_medium=email");
  const Row row = GENERATE_REF(from_range(std::begin(rows), std::end(rows)));
  INFO("gap ms " << row.gap);
  // Direct follow-up: only time decides.
  const auto direct = pageview(T0 + row.gap, "https://shop.example/pricing");
  CHECK(starts_new_session(T0, campaign, direct) == row.new_session);
  // The same source again: only time decides too.
  const auto same =
      pageview(T0 + row.gap, "https://shop.example/b?utm_source=newsletter&utm_medium=email");
  CHECK(starts_new_session(T0, campaign, same) == row.new_session);
  // A different source: always a new session.
  const auto other = pageview(T0 + row.gap, "https://shop.example/?gclid=abc");
  CHECK(starts_new_session(T0, campaign, other));
}

TEST_CASE("starts_new_session: traffic sources mid-session", "[sessions]") {
  struct Row {
    const char* name;
    const char* session_url;
    const char* session_referrer;
    const char* url;
    const char* referrer;
    bool new_session;
  };
  // clang-format off
  const Row rows[] = {
    {"a new UTM campaign mid-session",
     "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=brand", "",
     "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=retargeting", "", true},
    {"new UTMs after an organic landing",
     "https://shop.example/", "https://www.google.com/",
     "https://shop.example/?utm_source=newsletter&utm_medium=email", "", true},
    {"the same campaign again continues (other page, content differs not)",
     "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring", "",
     "https://shop.example/shoes?utm_source=newsletter&utm_medium=email&utm_campaign=spring", "", false},
    {"the same campaign with a different utm_content is a different source",
     "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_content=a", "",
     "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_content=b", "", true},
    {"a direct pageview does not break a campaign session",
     "https://shop.example/?utm_source=facebook&utm_medium=cpc&utm_campaign=x", "",
     "https://shop.example/checkout", "", false},
    {"internal navigation (own-domain referrer) does not break it",
     "https://shop.example/?utm_source=facebook&utm_medium=cpc", "",
     "https://shop.example/cart", "https://shop.example/product/1", false},
    {"returning from Stripe Checkout does not break it",
     "https://shop.example/?utm_source=facebook&utm_medium=cpc", "",
     "https://shop.example/thanks?session_id=cs_1", "https://checkout.stripe.com/c/pay/cs_1", false},
    {"an external referrer mid-session starts one",
     "https://shop.example/?utm_source=facebook&utm_medium=cpc", "",
     "https://shop.example/", "https://news.example.org/story", true},
    {"a click id mid-session starts one",
     "https://shop.example/", "https://www.google.com/",
     "https://shop.example/?gclid=abc", "https://www.google.com/", true},
    {"back to Google from Google (another country site) continues",
     "https://shop.example/", "https://www.google.com/",
     "https://shop.example/docs", "https://www.google.de/", false},
    {"a direct session followed by a referral starts one",
     "https://shop.example/", "",
     "https://shop.example/", "https://t.co/abc", true},
    {"an affiliate link mid-session starts one",
     "https://shop.example/", "",
     "https://shop.example/?ref=partner42", "", true},
  };
  // clang-format on
  const Row row = GENERATE_REF(from_range(std::begin(rows), std::end(rows)));
  INFO(row.name);
  const auto session = pageview(T0, row.session_url, row.session_referrer);
  const auto candidate = pageview(T0 + 5 * kMinute, row.url, row.referrer);
  CHECK(starts_new_session(T0, session, candidate) == row.new_session);
}

TEST_CASE("sessions over a visit: landing touches", "[sessions]") {
  // A visitor's pageviews, in order; the session touches are what a timeline keeps.
  struct Step {
    Millis at;
    const char* url;
    const char* referrer;
  };
  const Step steps[] = {
      {T0, "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring", ""},
      {T0 + 2 * kMinute, "https://shop.example/pricing", "https://shop.example/"},
      {T0 + 31 * kMinute, "https://shop.example/docs", "https://shop.example/pricing"},  // 29 min gap
      {T0 + 62 * kMinute, "https://shop.example/", ""},  // 31 min gap: new direct session
      {T0 + 63 * kMinute, "https://shop.example/", "https://www.google.com/"},  // new source
      {T0 + 64 * kMinute, "https://shop.example/a", "https://shop.example/"},
      {T0 + 65 * kMinute, "https://shop.example/?gclid=x", "https://www.google.com/"},
  };
  std::vector<Touch> sessions;
  Millis last_seen = 0;
  for (const auto& s : steps) {
    const auto t = pageview(s.at, s.url, s.referrer);
    if (sessions.empty() || starts_new_session(last_seen, sessions.back(), t)) sessions.push_back(t);
    last_seen = std::max(last_seen, s.at);
  }
  REQUIRE(sessions.size() == 4);
  CHECK(sessions[0].channel == "Email");
  CHECK(sessions[0].campaign == "spring");
  CHECK(sessions[1].channel == "Direct");
  CHECK(sessions[1].at == T0 + 62 * kMinute);
  CHECK(sessions[2].channel == "Organic Search");
  CHECK(sessions[3].channel == "Paid Search");
}
