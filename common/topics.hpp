#pragma once
// The topic names are a public contract (see schemas/README.md): web edges produce to the input
// topics directly and downstream teams consume the output. Never rename; introduce a .v2 instead.
#include <array>
#include <string>
#include <string_view>

#include "common/config.hpp"

namespace revtrace::common::topics {

inline constexpr std::string_view kWebEvents = "revtrace.web-events.v1";
inline constexpr std::string_view kCheckoutRedirects = "revtrace.checkout-redirects.v1";
inline constexpr std::string_view kStripeEvents = "revtrace.stripe-events.v1";
inline constexpr std::string_view kAttributedRevenue = "revtrace.attributed-revenue.v1";
inline constexpr std::string_view kDeadLetter = "revtrace.dead-letter.v1";
// Ad spend per site, day, channel, source, campaign and currency; compacted, the latest value per
// key wins (key: site|day|channel|source|campaign|currency).
inline constexpr std::string_view kAdSpend = "revtrace.ad-spend.v1";
// Payment Links created through revtrace (one record per link; key: site_id). Kept forever, same
// partition count as the inputs; listing and audit only (the processor reads a link's attribution
// from the metadata Stripe copies onto its payments: stripe_api/README.md).
inline constexpr std::string_view kPaymentLinks = "revtrace.payment-links.v1";

// Input topics are keyed by site_id, co-partitioned (same partition count) and kept forever.
inline constexpr std::array<std::string_view, 3> kInputTopics{kWebEvents, kCheckoutRedirects,
                                                              kStripeEvents};

// The full name of a topic in a deployment: kafka.topic_prefix + the contract name.
[[nodiscard]] inline std::string name(const KafkaConfig& config, std::string_view topic) {
  return config.topic_prefix + std::string(topic);
}

// The contract name of a full topic name (the prefix removed).
[[nodiscard]] inline std::string_view contract_name(const KafkaConfig& config,
                                                    std::string_view full) {
  if (full.starts_with(config.topic_prefix)) full.remove_prefix(config.topic_prefix.size());
  return full;
}

}  // namespace revtrace::common::topics
