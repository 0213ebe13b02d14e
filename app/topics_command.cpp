// `revtrace topics create|check`: the topics are a public contract, so their settings are checked,
// not assumed. Input topics must share one partition count (co-partitioning: all records of a site
// land on the same partition number in every input topic) and keep records forever.
//
// check fails (exit 1) and prints what is wrong when a topic is missing or cannot be described,
// its configuration cannot be read, a contract setting is missing or has another value, its
// partition count differs from kafka.partitions, its replication factor is below
// kafka.replication_factor, or the input topics are not co-partitioned. Nothing unverified passes.
#include <algorithm>
#include <iostream>
#include <thread>

#include "app/commands.hpp"
#include "common/kafka.hpp"
#include "common/topics.hpp"

namespace revtrace::app {

namespace kafka = common::kafka;
using namespace std::chrono_literals;

namespace {

bool is_input(const common::KafkaConfig& config, const std::string& name) {
  const auto contract = common::topics::contract_name(config, name);
  return std::find(common::topics::kInputTopics.begin(), common::topics::kInputTopics.end(),
                   contract) != common::topics::kInputTopics.end();
}

}  // namespace

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
  // One DescribeConfigs round for the topics that exist (a broker that cannot answer costs one
  // timeout, not one per topic).
  std::vector<std::string> present;
  for (const auto& st : states) {
    if (st.partitions > 0 && st.error.empty()) present.push_back(st.name);
  }
  const auto present_configs = admin.topic_configs(present, 10s);
  std::size_t wrong = 0;
  std::string input_counts;  // "name=N, ..." of the input topics that exist
  int input_partitions = -1;
  bool co_partitioned = true;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& spec = specs[i];
    const auto& st = states[i];
    const auto found = std::find(present.begin(), present.end(), spec.name);
    const auto configs = found == present.end()
                             ? kafka::TopicConfigs{}
                             : present_configs[static_cast<std::size_t>(found - present.begin())];
    const auto problems = kafka::topic_problems(spec, st, configs);
    if (is_input(config.kafka, spec.name) && st.partitions > 0) {
      if (input_partitions < 0) input_partitions = st.partitions;
      if (st.partitions != input_partitions) co_partitioned = false;
      input_counts += (input_counts.empty() ? "" : ", ") + spec.name + "=" + std::to_string(st.partitions);
    }
    if (st.partitions == 0 && st.error.empty()) {
      std::cout << "MISSING  " << spec.name << "\n";
    } else if (problems.empty()) {
      std::cout << "OK       " << spec.name << " partitions=" << st.partitions << "\n";
    } else {
      std::cout << "MISMATCH " << spec.name << ":";
      for (std::size_t p = 0; p < problems.size(); ++p) {
        std::cout << (p == 0 ? " " : "; ") << problems[p];
      }
      std::cout << "\n";
    }
    if (!problems.empty()) ++wrong;
  }
  if (!co_partitioned) {
    std::cout << "NOT CO-PARTITIONED input topics (partitions): " << input_counts << "\n";
  }
  if (wrong > 0 || !co_partitioned) {
    std::cerr << "topics: check failed: " << wrong << " of " << specs.size()
              << " topics missing or not as the contract says"
              << (co_partitioned ? "" : "; input topics not co-partitioned") << " (see above)\n";
    return 1;
  }
  std::cout << "topics: all " << specs.size() << " topics present; input topics co-partitioned ("
            << input_partitions << " partitions)\n";
  return 0;
}

}  // namespace revtrace::app
