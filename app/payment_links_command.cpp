// `revtrace payment-links create|list`: Stripe Payment Links that carry their attribution
// (stripe_api/payment_links.hpp), recorded in revtrace.payment-links.v1.
#include <spdlog/spdlog.h>

#include <chrono>
#include <iostream>

#include "app/commands.hpp"
#include "common/kafka.hpp"
#include "common/topic_scan.hpp"
#include "common/topics.hpp"
#include "stripe_api/keys.hpp"
#include "stripe_api/payment_links.hpp"

namespace revtrace::app {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

stripe_api::ClientOptions stripe_client_options(const common::SiteConfig& site,
                                                const std::string& key) {
  return stripe_api::client_options(site.stripe_api_base, key);
}

int run_payment_link_create(const common::Config& config, const PaymentLinkOptions& options) {
  const auto* site = config.find_site(options.spec.site_id);
  if (site == nullptr) {
    std::cerr << "revtrace: no site '" << options.spec.site_id << "' is configured\n";
    return 2;
  }
  const auto key =
      stripe_api::payment_links_key(site->id, site->stripe_links_api_key, site->stripe_api_key);
  if (key.key.empty()) {
    std::cerr << "revtrace: site '" << site->id
              << "' has neither stripe_links_api_key nor stripe_api_key configured\n";
    return 2;
  }
  if (!key.warning.empty()) spdlog::warn("payment-links: {}", key.warning);
  // The key is chosen here, not inside create_payment_link, so that it can be printed: it is the
  // only way to repeat a create whose outcome is unknown without creating a second link.
  const std::string idempotency_key = options.idempotency_key.empty()
                                          ? stripe_api::random_idempotency_key()
                                          : options.idempotency_key;
  const std::string repeat =
      "run the same command with --idempotency-key " + idempotency_key;
  const stripe_api::StripeClient client(stripe_client_options(*site, key.key));
  const auto created = stripe_api::create_payment_link(client, options.spec, idempotency_key);
  if (!created.error.empty()) {
    std::cerr << "revtrace: payment link not created: " << created.error << "\n";
    if (!created.prepared.ok()) return 2;
    // Stripe may have created it all the same (a timeout, a lost answer): the same key returns
    // that link instead of a second one.
    std::cerr << "revtrace: to retry safely, " << repeat << "\n";
    return 1;
  }
  const auto record = stripe_api::payment_link_record(options.spec, created.prepared, *created.link,
                                                      now_ms(), site->email_hash_key);
  common::kafka::Producer producer(config.kafka);
  rd_kafka_resp_err_t delivery = RD_KAFKA_RESP_ERR__TIMED_OUT;
  const auto err = producer.produce(
      common::topics::name(config.kafka, common::topics::kPaymentLinks), site->id, record,
      [&delivery](rd_kafka_resp_err_t e) { delivery = e; });
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || !producer.flush(std::chrono::seconds(30)) ||
      delivery != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // The link exists at Stripe: say so, so that it is not created twice by hand.
    std::cerr << "revtrace: payment link " << created.link->id << " (" << created.link->url
              << ") was created but could not be recorded in Kafka ("
              << rd_kafka_err2str(err ? err : delivery) << "); " << repeat << " to record it\n";
    return 1;
  }
  std::cerr << "revtrace: payment link " << created.link->id << " created and recorded "
            << "(idempotency key " << idempotency_key << ")\n";
  std::cout << record << "\n";
  return 0;
}

int run_payment_link_list(const common::Config& config, const std::string& site_id) {
  if (config.find_site(site_id) == nullptr) {
    std::cerr << "revtrace: no site '" << site_id << "' is configured\n";
    return 2;
  }
  std::size_t n = 0;
  const auto error = common::kafka::scan_topic(
      config.kafka, common::topics::name(config.kafka, common::topics::kPaymentLinks), 0,
      std::chrono::seconds(60), [&](std::string_view key, std::string_view value) {
        if (key != site_id || value.empty()) return;
        std::cout << value << "\n";
        ++n;
      });
  if (!error.empty()) {
    std::cerr << "revtrace: " << error << "\n";
    return 1;
  }
  std::cerr << n << " payment link(s)\n";
  return 0;
}

}  // namespace revtrace::app
