// The channel rule table (README.md, "Channels"): every row, the order between rows, and the
// network lists it uses.
#include "processor/domain/channels.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

using namespace revtrace::domain;

namespace {

struct Row {
  const char* name;
  const char* source;
  const char* medium;
  const char* click_id;
  const char* referrer;
  const char* campaign;
  const char* channel;
};

// clang-format off
const Row kRows[] = {
  // name                                              source             medium          click id     referrer            campaign  channel
  {"nothing at all",                                   "",                "",             "",          "",                 "",       "Direct"},
  {"affiliate medium",                                 "partner42",       "affiliate",    "",          "",                 "",       "Affiliate"},
  {"affiliates medium beats a search-engine source",   "google",          "affiliates",   "",          "",                 "",       "Affiliate"},
  {"display medium",                                   "dv360",           "display",      "",          "",                 "",       "Display"},
  {"banner medium",                                    "adroll",          "banner",       "",          "",                 "",       "Display"},
  {"cpm is Display although it matches the paid pattern", "google",       "cpm",          "",          "",                 "",       "Display"},
  {"display medium beats a gclid",                     "google",          "display",      "gclid",     "",                 "",       "Display"},
  {"google cpc",                                       "google",          "cpc",          "",          "",                 "",       "Paid Search"},
  {"bing ppc",                                         "bing",            "ppc",          "",          "",                 "",       "Paid Search"},
  {"duckduckgo retargeting",                           "duckduckgo",      "retargeting",  "",          "",                 "",       "Paid Search"},
  {"a host as source: google.com / paid_search",       "google.com",      "paid_search",  "",          "",                 "",       "Paid Search"},
  {"gclid alone",                                      "",                "",             "gclid",     "",                 "",       "Paid Search"},
  {"msclkid with a non-paid medium",                   "newsletter",      "email",        "msclkid",   "",                 "",       "Paid Search"},
  {"gbraid",                                           "google",          "cpc",          "gbraid",    "",                 "",       "Paid Search"},
  {"facebook cpc",                                     "facebook",        "cpc",          "",          "",                 "",       "Paid Social"},
  {"linkedin paid",                                    "linkedin",        "paid",         "",          "",                 "",       "Paid Social"},
  {"fb alias, paidsocial",                             "fb",              "paidsocial",   "",          "",                 "",       "Paid Social"},
  {"l.facebook.com host as source",                    "l.facebook.com",  "cpc",          "",          "",                 "",       "Paid Social"},
  {"fbclid with a paid medium and an unlisted source", "meta_ads_q3",     "cpc",          "fbclid",    "",                 "",       "Paid Social"},
  {"ttclid",                                           "",                "",             "ttclid",    "",                 "",       "Paid Social"},
  {"twclid",                                           "twitter",         "cpc",          "twclid",    "",                 "",       "Paid Social"},
  {"li_fat_id",                                        "linkedin",        "",             "li_fat_id", "",                 "",       "Paid Social"},
  {"paid medium on an unlisted network (Paid Other)",  "carbonads",       "cpc",          "",          "",                 "",       "Other"},
  {"a sponsored newsletter is paid, not Email",        "newsletter",      "cpc",          "",          "",                 "",       "Other"},
  {"email medium",                                     "mailchimp",       "email",        "",          "",                 "",       "Email"},
  {"e-mail medium",                                    "crm",             "e-mail",       "",          "",                 "",       "Email"},
  {"newsletter source without medium",                 "newsletter",      "",             "",          "",                 "",       "Email"},
  {"email medium beats a search-engine source",        "google",          "email",        "",          "",                 "",       "Email"},
  {"email with a webmail referrer",                    "gmail",           "email",        "",          "mail.google.com",  "",       "Email"},
  {"facebook social",                                  "facebook",        "social",       "",          "",                 "",       "Organic Social"},
  {"social medium on a search-engine source",          "google",          "social",       "",          "",                 "",       "Organic Social"},
  {"social network source, 'organic' medium",          "facebook",        "organic",      "",          "",                 "",       "Organic Social"},
  {"reddit without medium",                            "reddit",          "",             "",          "",                 "",       "Organic Social"},
  {"x alias",                                          "x",               "",             "",          "",                 "",       "Organic Social"},
  {"sm medium",                                        "mastodon",        "sm",           "",          "",                 "",       "Organic Social"},
  {"fbclid alone, as extracted",                       "facebook",        "social",       "fbclid",    "",                 "",       "Organic Social"},
  {"social network referral",                          "linkedin",        "referral",     "",          "linkedin.com",     "",       "Organic Social"},
  {"google organic",                                   "google",          "organic",      "",          "google.com",       "",       "Organic Search"},
  {"bing without medium",                              "bing",            "",             "",          "",                 "",       "Organic Search"},
  {"organic medium on an unlisted engine",             "mysearch",        "organic",      "",          "",                 "",       "Organic Search"},
  {"a host as source: www.google.de",                  "www.google.de",   "",             "",          "",                 "",       "Organic Search"},
  {"referral medium",                                  "partner-blog",    "referral",     "",          "",                 "",       "Referral"},
  {"app medium",                                       "slack",           "app",          "",          "",                 "",       "Referral"},
  {"an external referrer alone",                       "news.example.org","referral",     "",          "news.example.org", "",       "Referral"},
  {"referrer host only (no source)",                   "",                "",             "",          "news.example.org", "",       "Referral"},
  {"unlisted source without medium: no rule",          "podcast",         "",             "",          "",                 "",       "Other"},
  {"a listed word in an unrelated host",               "x.example.com",   "",             "",          "",                 "",       "Other"},
  {"campaign only",                                    "",                "",             "",          "",                 "spring", "Other"},
  {"a payment link touch",                             "payment_link",    "payment_link", "",          "",                 "",       "Other"},
};
// clang-format on

Touch touch_of(const Row& row) {
  Touch t;
  t.source = row.source;
  t.medium = row.medium;
  t.click_id = row.click_id;
  t.referrer = row.referrer;
  t.campaign = row.campaign;
  return t;
}

}  // namespace

TEST_CASE("classify_channel: rule table rows", "[channels]") {
  const Row& row = GENERATE(from_range(std::begin(kRows), std::end(kRows)));
  INFO(row.name << " (source '" << row.source << "', medium '" << row.medium << "', click id '"
                << row.click_id << "', referrer '" << row.referrer << "')");
  CHECK(classify_channel(touch_of(row)) == row.channel);
}

TEST_CASE("classify_channel: every channel is reachable and nothing else comes out",
          "[channels]") {
  std::set<std::string_view> seen;
  for (const auto& row : kRows) {
    const auto channel = classify_channel(touch_of(row));
    CHECK(std::find(kChannels.begin(), kChannels.end(), channel) != kChannels.end());
    seen.insert(channel);
  }
  CHECK(seen.size() == kChannels.size());
}

TEST_CASE("classify_channel ignores time, path, device and the channel field", "[channels]") {
  Touch t;
  t.source = "google";
  t.medium = "cpc";
  const auto base = classify_channel(t);
  t.at = 123;
  t.landing_path = "/x";
  t.browser = "Safari";
  t.country = "JP";
  t.channel = "Direct";  // a stale value does not feed back
  CHECK(classify_channel(t) == base);
}

TEST_CASE("network_of: names, hosts and aliases", "[channels]") {
  const std::pair<const char*, const char*> rows[] = {
      {"google", "google"},           {"Google", "google"},
      {"www.google.co.uk", "google"}, {"google.com.br", "google"},
      {"search.yahoo.co.jp", "yahoo"}, {"l.facebook.com", "facebook"},
      {"m.facebook.com", "facebook"}, {"old.reddit.com", "reddit"},
      {"t.co", "twitter"},            {"x.com", "twitter"},
      {"x", "twitter"},               {"ig", "instagram"},
      {"lnkd.in", "linkedin"},        {"youtu.be", "youtube"},
      {"news.ycombinator.com", "hackernews"}, {"ya.ru", "yandex"},
      {"partner42", "partner42"},     {"x.example.com", "x.example.com"},
      {"google.example.com", "google.example.com"}, {"", ""},
  };
  for (const auto& [in, out] : rows) {
    INFO(in);
    CHECK(network_of(in) == out);
  }
}

TEST_CASE("referrer_source: known hosts, engines, networks, others", "[channels]") {
  struct R {
    const char* host;
    const char* source;
    const char* medium;
  };
  const R rows[] = {
      {"google.com", "google", "organic"},       {"google.co.uk", "google", "organic"},
      {"search.brave.com", "brave", "organic"},  {"ecosia.org", "ecosia", "organic"},
      {"yandex.ru", "yandex", "organic"},        {"baidu.com", "baidu", "organic"},
      {"l.instagram.com", "instagram", "social"}, {"lm.facebook.com", "facebook", "social"},
      {"pinterest.com", "pinterest", "social"},  {"t.co", "twitter", "social"},
      {"mail.google.com", "gmail", "email"},     {"outlook.live.com", "outlook", "email"},
      {"gemini.google.com", "gemini", "referral"}, {"chatgpt.com", "chatgpt.com", "referral"},
      {"news.example.org", "news.example.org", "referral"},
  };
  for (const auto& r : rows) {
    INFO(r.host);
    const auto implied = referrer_source(r.host);
    CHECK(implied.source == r.source);
    CHECK(implied.medium == r.medium);
  }
}
