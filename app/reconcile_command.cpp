// `revtrace reconcile --site S --since T`: Stripe changes the webhook path never delivered,
// fetched through the API with the site's read-only key and appended to
// revtrace.stripe-events.v1 as `source: "api"` records (stripe_api/reconcile.hpp). Whatever the
// topic already shows — a webhook event or an earlier reconcile — is not appended again.
#include <spdlog/spdlog.h>

#include <chrono>
#include <iostream>
#include <set>

#include "app/commands.hpp"
#include "common/kafka.hpp"
#include "common/topic_scan.hpp"
#include "common/topics.hpp"
#include "stripe_api/keys.hpp"
#include "stripe_api/reconcile.hpp"

namespace revtrace::app {

std::optional<std::int64_t> parse_since(std::string_view text, std::int64_t now_s) {
  if (text.empty()) return std::nullopt;
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (digits(text)) return std::stoll(std::string(text));
  const char unit = text.back();
  const auto number = text.substr(0, text.size() - 1);
  if (digits(number) && (unit == 'h' || unit == 'd' || unit == 'm')) {
    const std::int64_t n = std::stoll(std::string(number));
    return now_s - n * (unit == 'd' ? 86400 : unit == 'h' ? 3600 : 60);
  }
  // RFC 3339 in UTC: YYYY-MM-DDTHH:MM:SSZ (or a date alone).
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  const std::string t(text);
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2dZ", &y, &mo, &d, &h, &mi, &s) == 6 ||
      (t.size() == 10 && std::sscanf(t.c_str(), "%4d-%2d-%2d", &y, &mo, &d) == 3)) {
    const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(mo),
                                          std::chrono::day(d)};
    if (!ymd.ok()) return std::nullopt;
    return std::chrono::sys_days(ymd).time_since_epoch().count() * 86400 + h * 3600 + mi * 60 + s;
  }
  return std::nullopt;
}

int run_reconcile(const common::Config& config, const ReconcileOptions& options) {
  const auto* site = config.find_site(options.site);
  if (site == nullptr) {
    std::cerr << "revtrace: no site '" << options.site << "' is configured\n";
    return 2;
  }
  if (site->stripe_api_key.empty()) {
    std::cerr << "revtrace: site '" << site->id << "' has no stripe_api_key (a restricted "
              << "read-only key) configured\n";
    return 2;
  }
  if (const auto warning = stripe_api::reconcile_key_warning(site->id, site->stripe_api_key);
      !warning.empty()) {
    spdlog::warn("reconcile: {}", warning);
  }
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const auto since = parse_since(options.since, now_s);
  if (!since) {
    std::cerr << "revtrace: --since '" << options.since
              << "': use Unix seconds, 2025-04-01T00:00:00Z, 2025-04-01, or 72h / 3d / 90m\n";
    return 2;
  }
  auto client_options = stripe_client_options(*site, site->stripe_api_key);
  client_options.stripe_version = std::string(stripe_api::kReconcileApiVersion);
  const stripe_api::StripeClient client(client_options);
  stripe_api::ReconcileWindow window;
  window.since = *since;
  window.now = now_s;
  const auto fetched = stripe_api::fetch_reconcile_events(client, window);
  if (!fetched.error.empty()) {
    std::cerr << "revtrace: reconcile failed: " << fetched.error << "\n";
    return 1;
  }
  for (const auto& warning : fetched.warnings) spdlog::warn("reconcile: {}", warning);

  // What the topic already holds for this site, read from as early as anything fetched could
  // have been delivered (the widened listing windows, stripe_api::delivered_scan_start).
  const std::string topic = common::topics::name(config.kafka, common::topics::kStripeEvents);
  std::set<std::string> delivered;
  const auto scan_error = common::kafka::scan_topic(
      config.kafka, topic,
      std::max<std::int64_t>(1, stripe_api::delivered_scan_start(window) * 1000),
      std::chrono::seconds(120), [&](std::string_view key, std::string_view value) {
        if (key != site->id) return;
        if (auto k = stripe_api::delivered_change_key(value)) delivered.insert(std::move(*k));
      });
  if (!scan_error.empty()) {
    std::cerr << "revtrace: reconcile failed: " << scan_error << "\n";
    return 1;
  }

  std::vector<const stripe_api::SyntheticEvent*> missing;
  for (const auto& e : fetched.events) {
    if (!delivered.contains(e.change_key)) missing.push_back(&e);
  }
  // Oldest first, so the topic reads in the order things happened.
  std::stable_sort(missing.begin(), missing.end(),
                   [](const auto* a, const auto* b) { return a->created < b->created; });
  std::size_t appended = 0;
  if (!options.dry_run && !missing.empty()) {
    common::kafka::Producer producer(config.kafka);
    std::atomic<std::size_t> failed{0};
    const auto received = now_s * 1000;
    for (const auto* e : missing) {
      const auto record =
          stripe_api::stripe_events_record(site->id, *e, stripe_api::kReconcileApiVersion, received);
      const auto err = producer.produce(topic, site->id, record, [&failed](rd_kafka_resp_err_t x) {
        if (x) ++failed;
      });
      if (err) ++failed;
    }
    if (!producer.flush(std::chrono::seconds(60)) || failed.load() > 0) {
      std::cerr << "revtrace: reconcile: Kafka did not acknowledge " << failed.load()
                << " record(s); run it again (appends are idempotent by change)\n";
      return 1;
    }
    appended = missing.size();
  }
  std::cout << "{\"site_id\":\"" << site->id << "\",\"since\":" << *since
            << ",\"requests\":" << fetched.requests << ",\"listed\":{";
  bool first = true;
  for (const auto& [path, n] : fetched.listed) {
    std::cout << (first ? "" : ",") << "\"" << path << "\":" << n;
    first = false;
  }
  std::cout << "},\"changes\":" << fetched.events.size() << ",\"already_delivered\":"
            << fetched.events.size() - missing.size() << ",\"missing\":" << missing.size()
            << ",\"appended\":" << appended << ",\"dry_run\":" << (options.dry_run ? "true" : "false")
            << ",\"events_complete\":" << (fetched.events_complete ? "true" : "false") << "}\n";
  return 0;
}

}  // namespace revtrace::app
