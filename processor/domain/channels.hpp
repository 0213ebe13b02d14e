#pragma once
// Channels: the rule table of processor/domain/README.md, in the spirit of GA4's default channel
// grouping — an ordered list of rules over a touch's source, medium, click id and referrer, first
// match wins — plus the lists of search engines, social networks and known referrers it uses.
#include <array>
#include <string>
#include <string_view>

#include "processor/domain/touch.hpp"

namespace revtrace::domain {

// Every channel classify_channel() can return.
inline constexpr std::array<std::string_view, 10> kChannels{
    "Direct", "Affiliate",      "Display",        "Paid Search", "Paid Social",
    "Other",  "Email",          "Organic Social", "Organic Search", "Referral"};

// The touch's channel, one of kChannels. Total: every touch gets exactly one.
[[nodiscard]] std::string_view classify_channel(const Touch& touch);

// Whether a network name ("google", "facebook"; see network_of) is a search engine / social
// network of the lists in README.md.
[[nodiscard]] bool is_search_engine(std::string_view network);
[[nodiscard]] bool is_social_network(std::string_view network);

// The network a utm_source value or a host names, for classification: the value itself when it is
// a listed name ("google"); the listed name of a host ("www.google.co.uk" -> "google",
// "l.facebook.com" -> "facebook", "t.co" -> "twitter"); otherwise the value unchanged.
[[nodiscard]] std::string network_of(std::string_view source_or_host);

// The source and medium an external referrer host implies when the landing URL has no UTM source:
// a known host ("mail.google.com" -> gmail / email), a search engine (-> engine / organic), a
// social network (-> network / social), else the host itself / referral.
struct ReferrerSource {
  std::string source, medium;
};
[[nodiscard]] ReferrerSource referrer_source(std::string_view host);

}  // namespace revtrace::domain
