#pragma once
// The topic names are a public contract (see schemas/README.md): web edges produce to the input
// topics directly and downstream teams consume the output. Never rename; introduce a .v2 instead.
#include <array>
#include <string_view>

namespace revtrace::common::topics {

inline constexpr std::string_view kWebEvents = "revtrace.web-events.v1";
inline constexpr std::string_view kCheckoutRedirects = "revtrace.checkout-redirects.v1";
inline constexpr std::string_view kStripeEvents = "revtrace.stripe-events.v1";
inline constexpr std::string_view kAttributedRevenue = "revtrace.attributed-revenue.v1";
inline constexpr std::string_view kDeadLetter = "revtrace.dead-letter.v1";
// Ad spend per site, day, channel, source, campaign and currency; compacted, the latest value per
// key wins (key: site|day|channel|source|campaign|currency).
inline constexpr std::string_view kAdSpend = "revtrace.ad-spend.v1";

// Input topics are keyed by site_id, co-partitioned (same partition count) and kept forever.
inline constexpr std::array<std::string_view, 3> kInputTopics{kWebEvents, kCheckoutRedirects,
                                                              kStripeEvents};

}  // namespace revtrace::common::topics
