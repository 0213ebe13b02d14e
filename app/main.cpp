// The `revtrace` binary: one executable, one subcommand per service.
#include <CLI/CLI.hpp>
#include <chrono>
#include <concepts>
#include <csignal>
#include <functional>
#include <iostream>
#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "common/config.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "ingest/gateway.hpp"
#include "processor/processor.hpp"
#include "projections/query_service.hpp"

namespace revtrace::app {

void wait_for_shutdown_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

}  // namespace revtrace::app

namespace {

using revtrace::common::Config;

struct GlobalOptions {
  std::string config_file;
  std::vector<std::string> assignments;
};

void add_global_options(CLI::App& cmd, GlobalOptions& g) {
  cmd.add_option("-c,--config", g.config_file, "TOML configuration file (or REVTRACE_CONFIG)");
  cmd.add_option("--set", g.assignments,
                 "Override a configuration key: --set section.key=value (repeatable)");
}

Config load(const GlobalOptions& g) {
  revtrace::common::ConfigSources sources;
  if (!g.config_file.empty()) {
    sources.file = g.config_file;
  } else if (const char* env = std::getenv("REVTRACE_CONFIG"); env != nullptr && *env != '\0') {
    sources.file = env;
  }
  sources.environment = revtrace::common::process_environment();
  sources.assignments = g.assignments;
  return revtrace::common::load_config(sources);
}

// Blocks until SIGINT or SIGTERM (true), or until `failed()` turns true (false), looking at it
// every `interval`.
bool wait_for_signal_unless(const std::function<bool()>& failed, std::chrono::milliseconds interval) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(interval);
  const timespec wait{static_cast<time_t>(seconds.count()),
                      static_cast<long>(std::chrono::nanoseconds(interval - seconds).count())};
  for (;;) {
    const int sig = sigtimedwait(&set, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return true;
    }
    if (failed()) return false;
  }
}

// Runs a service until SIGTERM/SIGINT and returns the process's exit status: non-zero whenever
// the service did not end well, so that systemd's Restart=on-failure restarts it. A service with
// healthy() (the processor) also ends by itself, without a signal, as soon as it turns unhealthy
// (its worker stopped on a fatal Kafka error, e.g. fenced). A service with
// delivered_everything() (the gateway) exits non-zero when its shutdown flush lost records.
template <typename Service>
int run_service(const Config& config, const char* name) {
  revtrace::common::metrics::Registry metrics;
  Service service(config, metrics);
  service.start();
  spdlog::info("{} running", name);
  constexpr bool kHasHealth = requires(const Service& s) { { s.healthy() } -> std::convertible_to<bool>; };
  if constexpr (kHasHealth) {
    if (!wait_for_signal_unless([&service] { return !service.healthy(); }, std::chrono::milliseconds(200))) {
      spdlog::critical("{}: the worker stopped on a fatal error; shutting down to be restarted", name);
    }
  } else {
    revtrace::app::wait_for_shutdown_signal();
  }
  service.stop();
  int status = 0;
  if constexpr (kHasHealth) {
    if (!service.healthy()) status = 1;
  }
  if constexpr (requires(const Service& s) { { s.delivered_everything() } -> std::convertible_to<bool>; }) {
    if (!service.delivered_everything()) status = 1;
  }
  if (status == 0) {
    spdlog::info("{} stopped", name);
  } else {
    spdlog::critical("{} stopped after a failure; exit status {}", name, status);
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken synchronously by wait_for_shutdown_signal(); every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"revtrace: ties every Stripe payment to the marketing touch that earned it"};
  app.require_subcommand(1);
  GlobalOptions global;
  add_global_options(app, global);

  auto* gateway = app.add_subcommand("gateway", "HTTP gateway: pixel events, checkout redirects, "
                                                "Stripe webhooks into Kafka; serves /revtrace.js");
  auto* processor = app.add_subcommand("processor", "Attribution processor: input topics -> "
                                                    "attributed revenue, state in RocksDB");
  auto* query = app.add_subcommand("query", "Read models of attributed revenue, query API and "
                                            "dashboard");
  bool query_rebuild = false;
  query->add_flag("--rebuild", query_rebuild,
                  "Drop the read models first and rebuild them from offset 0 of the topics");
  auto* dev = app.add_subcommand("dev", "Everything in one process on an embedded in-memory "
                                        "Kafka-protocol broker");
  revtrace::app::DevOptions dev_options;
  dev->add_flag("--demo", dev_options.demo, "Load a realistic demo data set");
  dev->add_option("--data-dir", dev_options.data_dir, "Where RocksDB state is kept")
      ->capture_default_str();
  auto* topics = app.add_subcommand("topics", "Create or verify revtrace's Kafka topics");
  topics->require_subcommand(1);
  auto* topics_create = topics->add_subcommand("create", "Create missing topics with their settings");
  auto* topics_check = topics->add_subcommand(
      "check", "Verify every topic exists with the right settings and co-partitioning");
  auto* replay = app.add_subcommand(
      "replay", "Rebuild all processor state and re-emit attribution from offset 0 (processors "
                "stopped; bump processor.generation first when the rules changed)");
  auto* ad_spend = app.add_subcommand("ad-spend", "Ad spend for ROAS");
  ad_spend->require_subcommand(1);
  auto* ad_spend_import = ad_spend->add_subcommand(
      "import", "Append ad spend from a CSV file (day,channel,source,campaign,amount,currency)");
  std::string spend_site;
  std::string spend_file;
  ad_spend_import->add_option("--site", spend_site, "Site id")->required();
  ad_spend_import->add_option("--file", spend_file, "CSV file; amount in minor units")->required();
  // Payment Links with attribution, and missed-webhook reconciliation (stripe_api/README.md).
  auto* links = app.add_subcommand("payment-links", "Stripe Payment Links that carry attribution");
  links->require_subcommand(1);
  auto* links_create = links->add_subcommand("create", "Create a Payment Link and record it");
  auto* links_list = links->add_subcommand("list", "Print a site's recorded Payment Links (JSON lines)");
  revtrace::app::PaymentLinkOptions link;
  links_create->add_option("--site", link.spec.site_id, "Site id")->required();
  links_create->add_option("--amount", link.spec.amount, "Price in minor units (5000 = 50.00 USD)")
      ->required();
  links_create->add_option("--currency", link.spec.currency, "ISO 4217 code, e.g. usd")->required();
  links_create->add_option("--product", link.spec.product, "Product name")->required();
  links_create->add_option("--quantity", link.spec.quantity, "Quantity")->capture_default_str();
  links_create->add_option("--interval", link.spec.interval, "Recurring: day|week|month|year");
  links_create->add_option("--campaign", link.spec.campaign, "Campaign credited for its payments");
  links_create->add_option("--source", link.spec.source, "Traffic source of the campaign");
  links_create->add_option("--medium", link.spec.medium, "Medium of the campaign");
  links_create->add_option("--customer-email", link.spec.customer_email, "The customer it is for");
  links_create->add_option("--redirect-url", link.spec.redirect_url,
                           "After payment; session_id={CHECKOUT_SESSION_ID} is appended");
  links_create->add_option("--idempotency-key", link.idempotency_key,
                           "Stripe Idempotency-Key (repeat a create safely)");
  std::string links_site;
  links_list->add_option("--site", links_site, "Site id")->required();
  auto* reconcile = app.add_subcommand(
      "reconcile", "Append to the Stripe events topic what the webhook path never delivered, "
                   "from the Stripe API");
  revtrace::app::ReconcileOptions reconcile_options;
  reconcile->add_option("--site", reconcile_options.site, "Site id")->required();
  reconcile->add_option("--since", reconcile_options.since,
                        "Objects created since: Unix seconds, 2025-04-01T00:00:00Z, 72h, 3d")
      ->required();
  reconcile->add_flag("--dry-run", reconcile_options.dry_run, "Report, append nothing");
  for (auto* cmd : {gateway, processor, query, dev, topics, topics_create, topics_check, replay,
                    ad_spend, ad_spend_import, links, links_create, links_list, reconcile}) {
    add_global_options(*cmd, global);
  }

  CLI11_PARSE(app, argc, argv);

  try {
    Config config = load(global);
    revtrace::common::setup_logging(config.log_level);
    if (gateway->parsed()) return run_service<revtrace::ingest::Gateway>(config, "gateway");
    if (processor->parsed()) return run_service<revtrace::processor::Processor>(config, "processor");
    if (query->parsed()) {
      if (query_rebuild) revtrace::projections::QueryService::drop_read_models(config);
      return run_service<revtrace::projections::QueryService>(config, "query");
    }
    if (dev->parsed()) return revtrace::app::run_dev(std::move(config), dev_options);
    if (topics->parsed()) return revtrace::app::run_topics(config, topics_create->parsed());
    if (replay->parsed()) return revtrace::app::run_replay(std::move(config));
    if (links_create->parsed()) return revtrace::app::run_payment_link_create(config, link);
    if (links_list->parsed()) return revtrace::app::run_payment_link_list(config, links_site);
    if (reconcile->parsed()) return revtrace::app::run_reconcile(config, reconcile_options);
    if (ad_spend_import->parsed()) {
      return revtrace::app::run_ad_spend_import(config, spend_site, spend_file);
    }
  } catch (const revtrace::common::ConfigError& e) {
    std::cerr << "revtrace: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "revtrace: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
