#pragma once
// A realistic demo data set for `revtrace dev --demo`: a few sites, thousands of visitors with
// several sessions over several channels, identifies, checkout redirects, and Stripe payments at a
// few percent of visitors, including a refund and subscription renewals.
#include <cstdint>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace revtrace::app {

struct DemoRecord {
  std::string topic;
  std::string key;
  std::string value;
};

struct DemoSummary {
  std::size_t visitors = 0;
  std::size_t pageviews = 0;
  std::size_t payments = 0;
  std::size_t stripe_events = 0;
};

// The demo sites (ids, query tokens, webhook secrets) that `dev --demo` adds to the configuration.
[[nodiscard]] std::vector<common::SiteConfig> demo_sites();
// Generates the demo's topic records; deterministic for a given seed and base time.
[[nodiscard]] std::vector<DemoRecord> demo_records(std::int64_t now_ms, std::uint32_t seed,
                                                   DemoSummary& summary);

}  // namespace revtrace::app
