#include "processor/domain/channels.hpp"

#include <algorithm>
#include <array>

namespace revtrace::domain {
namespace {

constexpr std::array<std::string_view, 16> kSearchEngines{
    "google", "bing",  "duckduckgo", "yahoo", "yandex", "baidu",  "ecosia", "brave",
    "qwant",  "naver", "seznam",     "sogou", "startpage", "ask", "aol", "kagi"};
constexpr std::array<std::string_view, 22> kSocialNetworks{
    "facebook", "instagram", "linkedin", "twitter",  "x",         "tiktok",  "youtube", "reddit",
    "pinterest", "snapchat", "threads",  "mastodon", "bluesky",   "tumblr",  "quora",   "discord",
    "telegram", "whatsapp",  "vk",       "weibo",    "producthunt", "hackernews"};
constexpr std::array<std::string_view, 6> kEmailMarkers{"email",      "e-mail", "e_mail",
                                                        "e mail",     "newsletter", "mail"};
constexpr std::array<std::string_view, 6> kDisplayMedia{"display", "banner", "cpm",
                                                        "expandable", "interstitial", "programmatic"};
constexpr std::array<std::string_view, 6> kSocialMedia{"social",       "social-network",
                                                       "social-media", "sm",
                                                       "social network", "social media"};
constexpr std::array<std::string_view, 4> kSearchClickIds{"gclid", "gbraid", "wbraid", "msclkid"};
constexpr std::array<std::string_view, 3> kSocialClickIds{"ttclid", "li_fat_id", "twclid"};

template <std::size_t N>
bool in(const std::array<std::string_view, N>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// GA4's paid medium pattern: ^(.*cp.*|ppc|retargeting|paid.*)$
bool paid_medium(std::string_view m) {
  return m.find("cp") != std::string_view::npos || m == "ppc" || m == "retargeting" ||
         m.starts_with("paid");
}

struct Rule {
  std::string_view channel;
  bool (*matches)(const Touch&);
};

// The rule table, first match wins (documented in README.md).
constexpr Rule kRules[] = {
    {"Direct", [](const Touch& t) { return is_direct(t); }},
    {"Affiliate", [](const Touch& t) { return t.medium == "affiliate" || t.medium == "affiliates"; }},
    {"Paid Search",
     [](const Touch& t) {
       return in(kSearchClickIds, t.click_id) ||
              (is_search_engine(t.source) && paid_medium(t.medium));
     }},
    {"Paid Social",
     [](const Touch& t) {
       return in(kSocialClickIds, t.click_id) ||
              (is_social_network(t.source) && paid_medium(t.medium)) ||
              (t.click_id == "fbclid" && paid_medium(t.medium));
     }},
    {"Display", [](const Touch& t) { return in(kDisplayMedia, t.medium); }},
    {"Other", [](const Touch& t) { return paid_medium(t.medium); }},  // paid, unknown network
    {"Email", [](const Touch& t) { return in(kEmailMarkers, t.medium) || in(kEmailMarkers, t.source); }},
    {"Organic Search", [](const Touch& t) { return t.medium == "organic" || is_search_engine(t.source); }},
    {"Organic Social",
     [](const Touch& t) { return in(kSocialMedia, t.medium) || is_social_network(t.source); }},
    {"Referral",
     [](const Touch& t) {
       return t.medium == "referral" || t.medium == "app" || t.medium == "link" || !t.referrer.empty();
     }},
};

}  // namespace

bool is_search_engine(std::string_view source) { return in(kSearchEngines, source); }
bool is_social_network(std::string_view source) { return in(kSocialNetworks, source); }

std::string_view classify_channel(const Touch& touch) {
  for (const auto& rule : kRules) {
    if (rule.matches(touch)) return rule.channel;
  }
  return "Other";
}

}  // namespace revtrace::domain
