#pragma once
#include <string>

#include "common/config.hpp"

namespace revtrace::app {

int run_topics(const common::Config& config, bool create);
int run_replay(common::Config config);
int run_ad_spend_import(const common::Config& config, const std::string& site,
                        const std::string& file);
struct DevOptions {
  bool demo = false;
  std::string data_dir = "./data/dev";
};
int run_dev(common::Config config, const DevOptions& options);
// Blocks until SIGINT or SIGTERM (both blocked in every thread by main()).
void wait_for_shutdown_signal();

}  // namespace revtrace::app
