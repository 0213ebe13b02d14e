#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "stripe_api/payment_links.hpp"

namespace revtrace::app {

int run_topics(const common::Config& config, bool create);
int run_replay(common::Config config);
int run_ad_spend_import(const common::Config& config, const std::string& site,
                        const std::string& file);
struct PaymentLinkOptions {
  stripe_api::PaymentLinkSpec spec;
  std::string idempotency_key;  // empty = random
};
int run_payment_link_create(const common::Config& config, const PaymentLinkOptions& options);
int run_payment_link_list(const common::Config& config, const std::string& site);
struct ReconcileOptions {
  std::string site;
  std::string since;  // Unix seconds, RFC 3339 UTC, a date, or 72h / 3d / 90m ago
  bool dry_run = false;
};
int run_reconcile(const common::Config& config, const ReconcileOptions& options);
// --since text → Unix seconds (relative forms against `now_s`).
std::optional<std::int64_t> parse_since(std::string_view text, std::int64_t now_s);
// Stripe client options for a site (base URL; REVTRACE_STRIPE_TIMEOUT_MS / _BACKOFF_MS override).
stripe_api::ClientOptions stripe_client_options(const common::SiteConfig& site,
                                                const std::string& key);
struct DevOptions {
  bool demo = false;
  std::string data_dir = "./data/dev";
};
int run_dev(common::Config config, const DevOptions& options);
// Blocks until SIGINT or SIGTERM (both blocked in every thread by main()).
void wait_for_shutdown_signal();

}  // namespace revtrace::app
