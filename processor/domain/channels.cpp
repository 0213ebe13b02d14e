#include "processor/domain/channels.hpp"

#include <algorithm>
#include <vector>

namespace revtrace::domain {
namespace {

// ---- The lists (README.md, "Lists"). Names are lower-case network names, not hosts. ----------

constexpr std::string_view kSearchEngines[] = {
    "google", "bing",   "duckduckgo", "yahoo", "yandex", "baidu",  "ecosia",  "brave",
    "qwant",  "naver",  "seznam",     "sogou", "startpage", "ask", "aol",     "kagi",
    "msn",    "daum",   "mojeek",     "yep",   "petalsearch"};
constexpr std::string_view kSocialNetworks[] = {
    "facebook", "instagram", "linkedin",  "twitter",  "tiktok",   "youtube",
    "reddit",   "pinterest", "snapchat",  "threads",  "mastodon", "bluesky",     "tumblr",
    "quora",    "discord",   "telegram",  "whatsapp", "vk",       "weibo",       "producthunt",
    "hackernews", "meta",    "messenger", "wechat",   "xing",     "nextdoor",    "twitch"};
// utm_source spellings of listed networks. Only for utm_source values, never for host labels:
// "x.example.com" is not X.
struct Alias {
  std::string_view spelling, network;
};
constexpr Alias kSourceAliases[] = {
    {"x", "twitter"}, {"fb", "facebook"}, {"ig", "instagram"}, {"yt", "youtube"}};
// Exact medium (or source) values.
constexpr std::string_view kEmailMarkers[] = {"email", "e-mail", "e_mail", "e mail", "newsletter",
                                              "mail"};
constexpr std::string_view kDisplayMedia[] = {"display", "banner", "cpm", "expandable",
                                              "interstitial", "programmatic"};
constexpr std::string_view kSocialMedia[] = {"social", "social-network", "social-media",
                                             "social_media", "sm", "social network",
                                             "social media"};
constexpr std::string_view kAffiliateMedia[] = {"affiliate", "affiliates"};
constexpr std::string_view kReferralMedia[] = {"referral", "app", "link"};
// Click ids that only ad clicks carry. fbclid is not here: Meta appends it to every outbound
// link from its apps, organic posts included, so alone it means Organic Social.
constexpr std::string_view kSearchClickIds[] = {"gclid", "gbraid", "wbraid", "msclkid"};
constexpr std::string_view kSocialClickIds[] = {"ttclid", "li_fat_id", "twclid"};

// Hosts (and their subdomains) whose network or meaning the generic host rule would get wrong:
// short links, webmail (a Google host that is not Google Search), Android app referrers
// (android-app://com.google.android.gm arrives here reversed: gm.android.google.com).
struct KnownReferrer {
  std::string_view host, source, medium;
};
constexpr KnownReferrer kKnownReferrers[] = {
    {"t.co", "twitter", "social"},
    {"x.com", "twitter", "social"},
    {"lnkd.in", "linkedin", "social"},
    {"youtu.be", "youtube", "social"},
    {"fb.com", "facebook", "social"},
    {"fb.me", "facebook", "social"},
    {"m.me", "facebook", "social"},
    {"news.ycombinator.com", "hackernews", "social"},
    {"bsky.app", "bluesky", "social"},
    {"ya.ru", "yandex", "organic"},
    {"mail.google.com", "gmail", "email"},
    {"gm.android.google.com", "gmail", "email"},
    {"outlook.live.com", "outlook", "email"},
    {"outlook.office.com", "outlook", "email"},
    {"outlook.office365.com", "outlook", "email"},
    {"mail.yahoo.com", "yahoo_mail", "email"},
    {"mail.aol.com", "aol_mail", "email"},
    {"mail.proton.me", "proton_mail", "email"},
    {"gemini.google.com", "gemini", "referral"},
};

// Second-level labels of two-label public suffixes under a country code ("co.uk", "com.au").
constexpr std::string_view kSecondLevels[] = {"co",  "com", "net", "org", "gov", "edu",
                                              "ac",  "ne",  "or",  "go",  "gob", "gen",
                                              "ltd", "plc", "nic", "mil"};

template <std::size_t N>
bool in(const std::string_view (&list)[N], std::string_view v) {
  return std::find(std::begin(list), std::end(list), v) != std::end(list);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// host equals domain or is a subdomain of it.
bool within(std::string_view host, std::string_view domain) {
  if (domain.empty()) return false;
  if (host == domain) return true;
  return host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.';
}

const KnownReferrer* known_referrer(std::string_view host) {
  for (const auto& k : kKnownReferrers) {
    if (within(host, k.host)) return &k;
  }
  return nullptr;
}

// The label that names the site: "google" for "www.google.co.uk", "facebook" for
// "l.facebook.com". An approximation of the registrable domain, good enough to find listed names
// without matching a listed word anywhere in a host ("x.example.com" is not X).
std::string_view site_label(std::string_view host) {
  std::vector<std::string_view> labels;
  std::size_t pos = 0;
  while (true) {
    const auto dot = host.find('.', pos);
    labels.push_back(host.substr(pos, dot == std::string_view::npos ? host.npos : dot - pos));
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  while (labels.size() > 1 && labels.back().empty()) labels.pop_back();  // "google.com."
  const std::size_t n = labels.size();
  if (n == 1) return labels[0];
  std::size_t suffix = 1;
  if (n >= 3 && labels[n - 1].size() == 2 && in(kSecondLevels, labels[n - 2])) suffix = 2;
  return labels[n - 1 - suffix];
}

// GA4's paid medium pattern: ^(.*cp.*|ppc|retargeting|paid.*)$
bool paid_medium(std::string_view m) {
  return m.find("cp") != std::string_view::npos || m == "ppc" || m == "retargeting" ||
         m.starts_with("paid");
}

// What the rules look at, computed once per touch.
struct Facts {
  const Touch& touch;
  std::string network;  // network_of(touch.source)
  bool paid;            // paid_medium(touch.medium)
};

struct ChannelRule {
  std::string_view channel;
  bool (*matches)(const Facts&);
};

// THE RULE TABLE (README.md, "Channels"): first match wins. Explicit markers (medium, click id)
// come before what a source name implies, and paid before organic, so that a tagged
// "utm_source=google&utm_medium=email" is Email and "utm_source=facebook&utm_medium=cpc" is
// Paid Social.
constexpr ChannelRule kRules[] = {
    {"Direct", [](const Facts& f) { return is_direct(f.touch); }},
    {"Affiliate", [](const Facts& f) { return in(kAffiliateMedia, f.touch.medium); }},
    {"Display", [](const Facts& f) { return in(kDisplayMedia, f.touch.medium); }},
    {"Paid Search",
     [](const Facts& f) {
       return in(kSearchClickIds, f.touch.click_id) || (f.paid && is_search_engine(f.network));
     }},
    {"Paid Social",
     [](const Facts& f) {
       return in(kSocialClickIds, f.touch.click_id) ||
              (f.paid && (is_social_network(f.network) || f.touch.click_id == "fbclid"));
     }},
    // A paid medium on an unlisted network (GA4's "Paid Other").
    {"Other", [](const Facts& f) { return f.paid; }},
    {"Email",
     [](const Facts& f) {
       return in(kEmailMarkers, f.touch.medium) || in(kEmailMarkers, f.touch.source);
     }},
    {"Organic Social",
     [](const Facts& f) {
       return in(kSocialMedia, f.touch.medium) || is_social_network(f.network);
     }},
    {"Organic Search",
     [](const Facts& f) { return f.touch.medium == "organic" || is_search_engine(f.network); }},
    {"Referral",
     [](const Facts& f) {
       return in(kReferralMedia, f.touch.medium) || !f.touch.referrer.empty();
     }},
    // Anything else: a source or campaign no rule recognises.
    {"Other", [](const Facts&) { return true; }},
};

}  // namespace

bool is_search_engine(std::string_view network) { return in(kSearchEngines, network); }
bool is_social_network(std::string_view network) { return in(kSocialNetworks, network); }

std::string network_of(std::string_view source_or_host) {
  std::string s = lower(source_or_host);
  for (const auto& a : kSourceAliases) {
    if (s == a.spelling) return std::string(a.network);
  }
  if (is_search_engine(s) || is_social_network(s)) return s;
  if (s.find('.') == std::string::npos) return s;
  std::string_view host = s;
  if (host.starts_with("www.")) host.remove_prefix(4);
  if (const auto* k = known_referrer(host)) return std::string(k->source);
  const auto label = site_label(host);
  if (is_search_engine(label) || is_social_network(label)) return std::string(label);
  return s;
}

ReferrerSource referrer_source(std::string_view host_text) {
  const std::string host = lower(host_text);
  if (const auto* k = known_referrer(host)) return {std::string(k->source), std::string(k->medium)};
  const std::string label(site_label(host));
  if (is_search_engine(label)) return {label, "organic"};
  if (is_social_network(label)) return {label, "social"};
  return {host, "referral"};
}

std::string_view classify_channel(const Touch& touch) {
  const Facts facts{touch, network_of(touch.source), paid_medium(touch.medium)};
  for (const auto& rule : kRules) {
    if (rule.matches(facts)) return rule.channel;
  }
  return "Other";  // unreachable: the last rule matches everything
}

}  // namespace revtrace::domain
