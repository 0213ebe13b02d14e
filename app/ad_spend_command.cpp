// `revtrace ad-spend import --site S --file spend.csv`: appends ad spend from a CSV export of an
// ad platform (columns day, channel, source, campaign, amount, currency, and optionally livemode:
// false marks test-mode spend; true or empty is live money) to revtrace.ad-spend.v1.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/commands.hpp"
#include "common/kafka.hpp"
#include "common/topics.hpp"
#include "projections/ad_spend.hpp"

namespace revtrace::app {

using namespace std::chrono_literals;

int run_ad_spend_import(const common::Config& config, const std::string& site,
                        const std::string& file) {
  if (config.find_site(site) == nullptr) {
    std::cerr << "ad-spend: unknown site '" << site << "' (not in the configuration)\n";
    return 2;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "ad-spend: cannot read " << file << "\n";
    return 2;
  }
  std::ostringstream text;
  text << in.rdbuf();
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const auto parsed = projections::parse_ad_spend_csv(text.str(), site, now);
  if (!parsed.error.empty()) {
    std::cerr << "ad-spend: " << file << ": " << parsed.error << "\n";
    return 1;
  }
  common::kafka::Producer producer(config.kafka);
  std::atomic<std::size_t> failed{0};
  for (const auto& e : parsed.entries) {
    const auto err = producer.produce(common::topics::name(config.kafka, common::topics::kAdSpend),
                                      e.key(), e.to_json(),
                                      [&failed](rd_kafka_resp_err_t r) {
                                        if (r) failed.fetch_add(1);
                                      });
    if (err) {
      std::cerr << "ad-spend: cannot queue: " << rd_kafka_err2str(err) << "\n";
      return 1;
    }
  }
  if (!producer.flush(60s) || failed.load() > 0) {
    std::cerr << "ad-spend: Kafka did not acknowledge every entry\n";
    return 1;
  }
  std::cout << "ad-spend: imported " << parsed.entries.size() << " entries for site " << site
            << "\n";
  return 0;
}

}  // namespace revtrace::app
