// The Kafka side of the public contract (schemas/README.md), checked against a real broker:
//
// - `revtrace topics check` fails loudly, and says what is wrong, for a topic that is missing, has
//   another retention or cleanup policy, another partition count or breaks co-partitioning, and
//   for a configuration it cannot read (a broker without DescribeConfigs: librdkafka's mock
//   cluster); it passes on topics made by `topics create`. [topics], [topics_unreadable]
// - The rules it applies, including a key the broker does not report. [topic_problems] (unit)
//
// Each case has its own topics (kafka.topic_prefix).
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/kafka.hpp"
#include "common/topics.hpp"
#include "tests/support/test_support.hpp"

using namespace revtrace::testing;
using namespace std::chrono_literals;
namespace kafka = revtrace::common::kafka;
namespace topics = revtrace::common::topics;

namespace {

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr
};

// Runs `revtrace ARGS --config CONFIG` to completion.
Run run_revtrace(const std::string& dir, const std::vector<std::string>& args, const std::string& config) {
  std::vector<std::string> argv{revtrace_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--config");
  argv.push_back(config);
  const std::string log = dir + "/" + unique("run") + ".log";
  ChildProcess child(argv, {}, log);
  Run r;
  r.status = child.wait(180s).value_or(-1);
  r.output = child.log();
  return r;
}

std::string write_config(const std::string& dir, const std::string& bootstrap, const std::string& prefix,
                         int partitions, const std::string& extra = {}) {
  const std::string path = dir + "/revtrace.toml";
  std::ofstream out(path);
  out << "log_level = \"info\"\n[kafka]\nbootstrap = \"" << bootstrap << "\"\ntopic_prefix = \"" << prefix
      << "\"\npartitions = " << partitions << "\n" << extra;
  return path;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : lines_of(text)) {
    if (l == line) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("topic_problems: every way a topic can differ from its spec is a problem", "[topic_problems]") {
  const kafka::TopicSpec spec{"p.revtrace.web-events.v1", 6, 3,
                              {{"cleanup.policy", "delete"}, {"retention.bytes", "-1"}, {"retention.ms", "-1"}}};
  const kafka::TopicState good{"p.revtrace.web-events.v1", 6, 3, ""};
  kafka::TopicConfigs read;
  read.values = {{"cleanup.policy", "delete"}, {"retention.bytes", "-1"}, {"retention.ms", "-1"},
                 {"segment.bytes", "1073741824"}};
  CHECK(kafka::topic_problems(spec, good, read).empty());

  using V = std::vector<std::string>;
  CHECK(kafka::topic_problems(spec, {"x", 0, 0, ""}, {}) == V{"does not exist"});
  CHECK(kafka::topic_problems(spec, {"x", 0, 0, "Broker: Topic authorization failed"}, {}) ==
        V{"cannot be described: Broker: Topic authorization failed"});
  CHECK(kafka::topic_problems(spec, {"x", 4, 3, ""}, read) == V{"4 partitions, want 6 (kafka.partitions)"});
  CHECK(kafka::topic_problems(spec, {"x", 6, 1, ""}, read) ==
        V{"replication factor 1, want at least 3 (kafka.replication_factor)"});
  CHECK(kafka::topic_problems(spec, {"x", 6, 5, ""}, read).empty());

  kafka::TopicConfigs failed;
  failed.error = "DescribeConfigs failed: Local: Timed out";
  CHECK(kafka::topic_problems(spec, good, failed) ==
        V{"its configuration cannot be read (DescribeConfigs failed: Local: Timed out), so its settings are unverified"});
  // A failed read is reported even when the map happens to hold entries.
  failed.values = read.values;
  CHECK(kafka::topic_problems(spec, good, failed).size() == 1);

  kafka::TopicConfigs missing = read;
  missing.values.erase("retention.bytes");
  CHECK(kafka::topic_problems(spec, good, missing) == V{"retention.bytes is not reported by the broker, want -1"});

  kafka::TopicConfigs wrong = read;
  wrong.values["retention.ms"] = "604800000";
  wrong.values["cleanup.policy"] = "compact,delete";
  CHECK(kafka::topic_problems(spec, {"x", 3, 3, ""}, wrong) ==
        V{"3 partitions, want 6 (kafka.partitions)", "cleanup.policy=compact,delete, want delete",
          "retention.ms=604800000, want -1"});
}

TEST_CASE("topics check passes on created topics and names every wrong setting, partition count and "
          "missing topic", "[topics]") {
  const std::string bootstrap = kafka_bootstrap();
  const std::string dir = temp_dir("revtrace-topics");
  INFO("logs in " << dir);

  SECTION("topics made by `topics create` pass") {
    const std::string prefix = unique("tc-ok") + ".";
    const auto config = write_config(dir, bootstrap, prefix, 3);
    const auto created = run_revtrace(dir, {"topics", "create"}, config);
    INFO(created.output);
    REQUIRE(created.status == 0);
    const auto checked = run_revtrace(dir, {"topics", "check"}, config);
    INFO(checked.output);
    CHECK(checked.status == 0);
    CHECK(has_line(checked.output, "OK       " + prefix + "revtrace.web-events.v1 partitions=3"));
    CHECK(has_line(checked.output, "OK       " + prefix + "revtrace.attributed-revenue.v1 partitions=3"));
    CHECK(has_line(checked.output, "topics: all 7 topics present; input topics co-partitioned (3 partitions)"));
  }

  SECTION("nothing created: every topic is missing") {
    const std::string prefix = unique("tc-none") + ".";
    const auto config = write_config(dir, bootstrap, prefix, 3);
    const auto checked = run_revtrace(dir, {"topics", "check"}, config);
    INFO(checked.output);
    CHECK(checked.status == 1);
    revtrace::common::KafkaConfig kc;
    kc.topic_prefix = prefix;
    for (const auto& spec : kafka::revtrace_topics(kc)) CHECK(has_line(checked.output, "MISSING  " + spec.name));
    CHECK(has_line(checked.output, "topics: check failed: 7 of 7 topics missing or not as the contract says (see above)"));
  }

  SECTION("wrong retention, cleanup policy and partition counts, one topic missing") {
    const std::string prefix = unique("tc-bad") + ".";
    const auto config = write_config(dir, bootstrap, prefix, 3);
    revtrace::common::KafkaConfig kc;
    kc.bootstrap = bootstrap;
    kc.topic_prefix = prefix;
    kc.partitions = 3;
    // The contract's specs, then spoiled one by one (values unlike any broker default, so that
    // the messages prove the settings were read back, not assumed).
    std::vector<kafka::TopicSpec> specs;
    for (auto spec : kafka::revtrace_topics(kc)) {
      const auto contract = topics::contract_name(kc, spec.name);
      if (contract == topics::kWebEvents) spec.configs["retention.ms"] = "123456789";
      if (contract == topics::kCheckoutRedirects) spec.partitions = 2;
      if (contract == topics::kStripeEvents) spec.configs["retention.bytes"] = "987654321";
      if (contract == topics::kAttributedRevenue) spec.configs["cleanup.policy"] = "delete";
      if (contract == topics::kDeadLetter) continue;  // not created
      if (contract == topics::kPaymentLinks) {
        spec.partitions = 5;
        spec.configs["cleanup.policy"] = "compact";
        spec.configs["retention.ms"] = "86400000";
      }
      specs.push_back(spec);
    }
    kafka::Admin admin(kc);
    REQUIRE(admin.create(specs, 30s).empty());
    // Wait for the metadata to show them (creation is asynchronous on the broker).
    std::vector<std::string> names;
    for (const auto& s : specs) names.push_back(s.name);
    REQUIRE(wait_until(30s, [&] {
      for (const auto& st : admin.describe(names, 10s)) {
        if (st.partitions == 0) return false;
      }
      return true;
    }));

    const auto checked = run_revtrace(dir, {"topics", "check"}, config);
    INFO(checked.output);
    CHECK(checked.status == 1);
    const std::string p = prefix;
    CHECK(has_line(checked.output, "MISMATCH " + p + "revtrace.web-events.v1: retention.ms=123456789, want -1"));
    CHECK(has_line(checked.output, "MISMATCH " + p + "revtrace.checkout-redirects.v1: 2 partitions, want 3 (kafka.partitions)"));
    CHECK(has_line(checked.output, "MISMATCH " + p + "revtrace.stripe-events.v1: retention.bytes=987654321, want -1"));
    CHECK(has_line(checked.output, "MISMATCH " + p + "revtrace.attributed-revenue.v1: cleanup.policy=delete, want compact"));
    CHECK(has_line(checked.output, "MISSING  " + p + "revtrace.dead-letter.v1"));
    CHECK(has_line(checked.output, "OK       " + p + "revtrace.ad-spend.v1 partitions=3"));
    CHECK(has_line(checked.output, "MISMATCH " + p + "revtrace.payment-links.v1: 5 partitions, want 3 (kafka.partitions); "
                                   "cleanup.policy=compact, want delete; retention.ms=86400000, want -1"));
    CHECK(has_line(checked.output, "NOT CO-PARTITIONED input topics (partitions): " + p + "revtrace.web-events.v1=3, " + p +
                                   "revtrace.checkout-redirects.v1=2, " + p + "revtrace.stripe-events.v1=3"));
    CHECK(has_line(checked.output, "topics: check failed: 6 of 7 topics missing or not as the contract says; "
                                   "input topics not co-partitioned (see above)"));
    CHECK(checked.output.find("topics: all") == std::string::npos);

    // The same topics checked against a larger kafka.partitions: the count is checked for every
    // topic, not only between the inputs.
    const auto config6 = write_config(dir, bootstrap, prefix, 6);
    const auto checked6 = run_revtrace(dir, {"topics", "check"}, config6);
    INFO(checked6.output);
    CHECK(checked6.status == 1);
    CHECK(has_line(checked6.output, "MISMATCH " + p + "revtrace.ad-spend.v1: 3 partitions, want 6 (kafka.partitions)"));
  }
}

TEST_CASE("topics check fails when the broker cannot tell the topics' configuration", "[topics_unreadable]") {
  // librdkafka's mock cluster answers metadata but has no DescribeConfigs: every configuration
  // lookup fails, which must never read as "nothing to check".
  kafka::MockCluster cluster;
  const std::string dir = temp_dir("revtrace-topics-mock");
  const std::string prefix = unique("tc-mock") + ".";
  revtrace::common::KafkaConfig kc;
  kc.topic_prefix = prefix;
  kc.partitions = 3;
  const auto specs = kafka::revtrace_topics(kc);
  for (const auto& spec : specs) cluster.create_topic(spec.name, 3);
  const auto config = write_config(dir, cluster.bootstrap(), prefix, 3);
  const auto checked = run_revtrace(dir, {"topics", "check"}, config);
  INFO(checked.output);
  CHECK(checked.status == 1);
  for (const auto& spec : specs) {
    const std::string start = "MISMATCH " + spec.name + ": its configuration cannot be read (";
    bool found = false;
    for (const auto& l : lines_of(checked.output)) {
      if (l.starts_with(start) && l.ends_with("), so its settings are unverified")) found = true;
    }
    CHECK(found);
  }
  CHECK(has_line(checked.output, "topics: check failed: 7 of 7 topics missing or not as the contract says (see above)"));
}
