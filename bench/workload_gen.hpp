#pragma once
// The benchmark's workload: many sites of skewed size, visitors with several sessions from several
// channels, identifies, checkout redirects, and payments at a few percent of visitors (one-off
// Checkout payments, subscriptions with renewals, refunds, duplicate webhook deliveries), in the
// record shapes the gateway writes (see tests/support/workload.cpp, which this extends to the
// scale of millions of visitors). Generated in chunks of visitors whose records are shuffled
// together, as concurrent traffic interleaves; deterministic for a seed and a visitor range, so a
// second run with first_visitor = N appends new visitors to an existing data set.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace revtrace::bench {

struct Record {
  int topic = 0;  // index into common::topics::kInputTopics (0 web, 1 redirects, 2 stripe)
  std::string key;  // site id (the partition key of every input topic)
  std::string value;
};

struct WorkloadOptions {
  std::uint32_t seed = 42;
  int sites = 200;
  std::string site_prefix = "bench";
  std::uint64_t first_visitor = 0;
  std::uint64_t visitors = 10000;
  double payer_fraction = 0.04;  // share of visitors who pay at least once
  std::uint64_t chunk_visitors = 4096;
  // Base of event times (ms since epoch); visitors spread over the following 30 days.
  std::int64_t base_ms = 1790000000000;
};

struct WorkloadStats {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t visitors = 0;
  std::uint64_t pageviews = 0;
  std::uint64_t identifies = 0;
  std::uint64_t redirects = 0;
  std::uint64_t payers = 0;
  std::uint64_t subscriptions = 0;
  std::uint64_t renewals = 0;
  std::uint64_t refunds = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t stripe_events = 0;
};

// Calls `sink` once per chunk with that chunk's shuffled records (the sink may move them away);
// generation stops early when the sink returns false.
void generate(const WorkloadOptions& options, const std::function<bool(std::vector<Record>&)>& sink,
              WorkloadStats& stats);

// Site id of site number i ("<prefix>-<i>").
[[nodiscard]] std::string site_id(const WorkloadOptions& options, int i);

// One checkout.session.completed webhook payload (the raw Stripe event JSON, as Stripe POSTs it)
// naming `visitor` in metadata; used by the end-to-end latency measurement.
[[nodiscard]] std::string checkout_webhook_payload(const std::string& event_id,
                                                   const std::string& session_id,
                                                   const std::string& visitor,
                                                   std::int64_t amount, std::int64_t created_s);

// A pageview record as the gateway writes it.
[[nodiscard]] std::string pageview_record(const std::string& site, const std::string& visitor,
                                          const std::string& event_id, std::int64_t at_ms,
                                          const std::string& url, const std::string& referrer);

}  // namespace revtrace::bench
