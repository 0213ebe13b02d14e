#pragma once
// A generated workload for processor tests: several sites, visitors with pageviews from several
// channels, checkout payments naming the visitor in metadata, redirects, refunds, renewals and
// duplicate deliveries. Deterministic for a seed.
#include <cstdint>
#include <string>
#include <vector>

namespace revtrace::testing {

struct WorkloadRecord {
  std::string topic;  // contract name, e.g. revtrace.web-events.v1
  std::string key;    // site id
  std::string value;
};

struct Workload {
  std::vector<WorkloadRecord> records;
  std::vector<std::string> sites;
  std::size_t payments = 0;
};

// A stripe-events record as the gateway writes it: the envelope around a Stripe event `id` of
// `type` whose data.object is the JSON `object`.
[[nodiscard]] std::string stripe_envelope(const std::string& site, const std::string& id,
                                          const std::string& type, std::int64_t created,
                                          const std::string& object, std::int64_t received);

[[nodiscard]] Workload make_workload(std::uint32_t seed, int sites, int visitors_per_site,
                                     const std::string& site_prefix);

}  // namespace revtrace::testing
