#pragma once
// The channel rule table (processor/domain/README.md), in the spirit of GA4's default channel
// grouping: an ordered list of rules over source, medium, click id and referrer.
#include <string_view>

#include "processor/domain/touch.hpp"

namespace revtrace::domain {

// One of "Direct", "Affiliate", "Paid Search", "Paid Social", "Display", "Email",
// "Organic Search", "Organic Social", "Referral", "Other".
[[nodiscard]] std::string_view classify_channel(const Touch& touch);
[[nodiscard]] bool is_search_engine(std::string_view source);
[[nodiscard]] bool is_social_network(std::string_view source);

}  // namespace revtrace::domain
