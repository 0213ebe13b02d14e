// `revtrace topics create|check`: the topics are a public contract, so their settings are checked,
// not assumed. Input topics must share one partition count (co-partitioning: all records of a site
// land on the same partition number in every input topic) and keep records forever.
#include <algorithm>
#include <iostream>
#include <thread>

#include "app/commands.hpp"
#include "common/kafka.hpp"
#include "common/topics.hpp"

namespace revtrace::app {

namespace kafka = common::kafka;
using namespace std::chrono_literals;

int run_topics(const common::Config& config, bool create) {
  kafka::Admin admin(config.kafka);
  const auto specs = kafka::revtrace_topics(config.kafka);
  if (create) {
    const auto errors = admin.create(specs, 30s);
    for (const auto& e : errors) std::cerr << "topics: cannot create " << e << "\n";
    if (!errors.empty()) return 1;
  }
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);
  // Newly created topics take a moment to appear in the metadata: wait for them (bounded).
  auto states = admin.describe(names, 10s);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (create && std::chrono::steady_clock::now() < deadline &&
         std::any_of(states.begin(), states.end(), [](const auto& s) { return s.partitions == 0; })) {
    std::this_thread::sleep_for(100ms);
    states = admin.describe(names, 10s);
  }
  int problems = 0;
  int input_partitions = -1;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& spec = specs[i];
    const auto& st = states[i];
    if (st.partitions == 0) {
      std::cout << "MISSING  " << spec.name << "\n";
      ++problems;
      continue;
    }
    const auto contract = common::topics::contract_name(config.kafka, spec.name);
    const bool input = std::find(common::topics::kInputTopics.begin(),
                                 common::topics::kInputTopics.end(),
                                 contract) != common::topics::kInputTopics.end();
    std::string notes;
    if (input) {
      if (input_partitions < 0) input_partitions = st.partitions;
      if (st.partitions != input_partitions) {
        notes += " partitions differ from the other input topics (" +
                 std::to_string(input_partitions) + "): not co-partitioned;";
        ++problems;
      }
    }
    const auto configs = admin.topic_configs(spec.name, 10s);
    for (const auto& [key, want] : spec.configs) {
      auto it = configs.find(key);
      if (it == configs.end()) continue;  // the broker did not report it
      if (it->second != want) {
        notes += " " + key + "=" + it->second + " (want " + want + ");";
        ++problems;
      }
    }
    std::cout << (notes.empty() ? "OK       " : "MISMATCH ") << spec.name
              << " partitions=" << st.partitions << notes << "\n";
  }
  if (problems == 0) {
    std::cout << "topics: all " << specs.size() << " topics present; input topics co-partitioned ("
              << input_partitions << " partitions)\n";
  }
  return problems == 0 ? 0 : 1;
}

}  // namespace revtrace::app
