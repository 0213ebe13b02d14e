// The Kafka side of the public contract (schemas/README.md), checked against a real broker:
//
// - `revtrace topics check` fails loudly, and says what is wrong, for a topic that is missing, has
//   another retention or cleanup policy, another partition count or breaks co-partitioning, and
//   for a configuration it cannot read (a broker without DescribeConfigs: librdkafka's mock
//   cluster); it passes on topics made by `topics create`. [topics], [topics_unreadable]
// - The rules it applies, including a key the broker does not report. [topic_problems] (unit)
// - Records are partitioned as Java clients partition them: (murmur2(key) & 0x7fffffff) % n, with
//   murmur2 written here from Kafka's Utils.murmur2 and checked against the vectors of Kafka's own
//   UtilsTest, for records produced through the gateway (pixel events and webhooks, both of its
//   producers) and through revtrace's producer wrapper, and compared with Kafka's own Java
//   producer (ConsoleProducer) writing the same keys. [partitioning]
// - The contract with the supervisor: a processor fenced by another instance exits 1 by itself.
//   [processor_exit]
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

std::string source_dir() {
  const char* s = std::getenv("REVTRACE_SOURCE_DIR");
  if (s == nullptr) throw std::runtime_error("REVTRACE_SOURCE_DIR is not set (run through ctest)");
  return s;
}

// Kafka's org.apache.kafka.common.utils.Utils.murmur2, written out independently of librdkafka
// (unsigned 32-bit arithmetic; Java's int wraps the same way).
std::int32_t murmur2(std::string_view data) {
  constexpr std::uint32_t kSeed = 0x9747b28c;
  constexpr std::uint32_t kM = 0x5bd1e995;
  constexpr int kR = 24;
  const auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])); };
  const std::size_t length = data.size();
  std::uint32_t h = kSeed ^ static_cast<std::uint32_t>(length);
  for (std::size_t i = 0; i + 4 <= length; i += 4) {
    std::uint32_t k = byte(i) | (byte(i + 1) << 8) | (byte(i + 2) << 16) | (byte(i + 3) << 24);
    k *= kM;
    k ^= k >> kR;
    k *= kM;
    h *= kM;
    h ^= k;
  }
  const std::size_t tail = length & ~std::size_t{3};
  switch (length % 4) {
    case 3:
      h ^= byte(tail + 2) << 16;
      [[fallthrough]];
    case 2:
      h ^= byte(tail + 1) << 8;
      [[fallthrough]];
    case 1:
      h ^= byte(tail);
      h *= kM;
      break;
    default:
      break;
  }
  h ^= h >> 13;
  h *= kM;
  h ^= h >> 15;
  return static_cast<std::int32_t>(h);
}

// The partition Java's producer picks for a keyed record (BuiltInPartitioner.partitionForKey).
int java_partition(std::string_view key, int partitions) {
  return static_cast<int>((static_cast<std::uint32_t>(murmur2(key)) & 0x7fffffffU) %
                          static_cast<std::uint32_t>(partitions));
}

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

TEST_CASE("murmur2 as written here gives Kafka's own test vectors", "[topic_problems][murmur2]") {
  // org.apache.kafka.common.utils.UtilsTest#testMurmur2
  CHECK(murmur2("21") == -973932308);
  CHECK(murmur2("foobar") == -790332482);
  CHECK(murmur2("a-little-bit-long-string") == -985981536);
  CHECK(murmur2("a-little-bit-longer-string") == -1486304829);
  CHECK(murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971);
  CHECK(murmur2("abc") == 479470107);
  // Every tail length (1..3 bytes after whole blocks) and a whole block alone, from Kafka's
  // Utils.murmur2 as quoted by other Java-compatible implementations.
  CHECK(murmur2("1") == -1993445489);
  CHECK(murmur2("12") == 126087238);
  CHECK(murmur2("123") == -267702483);
  CHECK(murmur2("1234") == -1614185708);
  CHECK(murmur2("12345") == -1188365604);
}

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

TEST_CASE("records land on the partition Java's producer would pick", "[partitioning]") {
  const std::string bootstrap = kafka_bootstrap();
  const std::string dir = temp_dir("revtrace-partitioning");
  INFO("logs in " << dir);
  const std::string prefix = unique("part") + ".";
  constexpr int kPartitions = 7;  // not a power of two: a wrong modulus or sign shows
  const std::uint16_t port = free_port();

  // 24 sites with ids of every tail length, through the gateway's two producers.
  std::vector<std::string> sites{"shop", "blog", "a", "ab", "abc", "acme-store", "21", "foobar",
                                 "a-little-bit-long-string"};
  for (int i = 0; sites.size() < 24; ++i) sites.push_back("site-" + std::to_string(i * 37));
  std::string extra = "[gateway]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nthreads = 1\n";
  for (const auto& s : sites) {
    extra += "[[sites]]\nid = \"" + s + "\"\nwebhook_secrets = [\"whsec_" + s + "\"]\nallowed_origins = [\"*\"]\n";
  }
  const auto config = write_config(dir, bootstrap, prefix, kPartitions, extra);
  const auto created = run_revtrace(dir, {"topics", "create"}, config);
  INFO(created.output);
  REQUIRE(created.status == 0);

  ChildProcess gateway({revtrace_binary(), "gateway", "--config", config}, {}, dir + "/gateway.log");
  INFO(gateway.log());
  REQUIRE(wait_for_http(port, "/readyz", 60s));
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  for (const auto& s : sites) {
    const std::string pageview = R"({"type":"pageview","site_id":")" + s + R"(","visitor_id":"v-1","event_id":"pv-)" + s +
                                 R"(","url":"https://shop.example/"})";
    REQUIRE(http_request(port, "POST", "/v1/events", pageview, {{"Content-Type", "application/json"}}).status == 202);
    const std::string event = R"({"id":"evt_)" + s + R"(","object":"event","api_version":"2025-03-31.basil",)"
                              R"("created":1700000000,"livemode":false,"type":"checkout.session.completed",)"
                              R"("data":{"object":{"id":"cs_test_1","object":"checkout.session"}}})";
    const auto r = http_request(port, "POST", "/v1/webhooks/stripe/" + s, event,
                                {{"Content-Type", "application/json"},
                                 {"Stripe-Signature", stripe_signature(event, "whsec_" + s, now_s)}});
    REQUIRE(r.status == 200);
  }
  gateway.signal(SIGTERM);
  REQUIRE(gateway.wait(90s).value_or(-1) == 0);

  std::size_t checked = 0;
  for (const auto topic : {topics::kWebEvents, topics::kStripeEvents}) {
    std::set<std::string> keys;
    std::vector<TopicRecord> records;
    REQUIRE(wait_until(60s, [&] {
      records = read_topic(bootstrap, prefix + std::string(topic));
      return records.size() >= sites.size();
    }));
    for (const auto& rec : records) {
      INFO(topic << " key " << rec.key);
      CHECK(rec.partition == java_partition(rec.key, kPartitions));
      keys.insert(rec.key);
      ++checked;
    }
    CHECK(keys == std::set<std::string>(sites.begin(), sites.end()));
  }
  CHECK(checked == 2 * sites.size());

  // revtrace's producer wrapper (what the processor, reconcile and ad-spend import use) with
  // random keys, UTF-8 and bytes above 0x7f included.
  std::mt19937 rng(20240601);
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) {
    std::string k;
    const int len = 1 + static_cast<int>(rng() % 40);
    for (int j = 0; j < len; ++j) k += static_cast<char>(i % 3 == 0 ? 1 + rng() % 255 : 'a' + rng() % 26);
    keys.push_back(k);
  }
  keys.emplace_back("ünïcode-säte");
  const std::string wrapper_topic = prefix + "wrapper";
  const std::string java_topic = prefix + "java";
  {
    revtrace::common::KafkaConfig kc;
    kc.bootstrap = bootstrap;
    kafka::Admin admin(kc);
    REQUIRE(admin.create({{wrapper_topic, kPartitions, 1, {}}, {java_topic, kPartitions, 1, {}}}, 30s).empty());
    REQUIRE(wait_until(30s, [&] {
      for (const auto& st : admin.describe({wrapper_topic, java_topic}, 10s)) {
        if (st.partitions != kPartitions) return false;
      }
      return true;
    }));
    kafka::Producer producer(kc);
    for (const auto& k : keys) REQUIRE(producer.produce(wrapper_topic, k, "v") == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(producer.flush(30s));
    REQUIRE(producer.delivery_failures() == 0);
  }
  const auto wrapped = read_topic(bootstrap, wrapper_topic);
  REQUIRE(wrapped.size() == keys.size());
  std::set<int> used;
  for (const auto& rec : wrapped) {
    CHECK(rec.partition == java_partition(rec.key, kPartitions));
    used.insert(rec.partition);
  }
  CHECK(static_cast<int>(used.size()) == kPartitions);  // the keys spread over every partition

  // Kafka's own Java producer with the same (printable) keys: the same partitions.
  std::map<std::string, int> expected;
  {
    std::ofstream in(dir + "/java-input.txt");
    for (const auto& k : keys) {
      if (k.find_first_of("|\n\r") != std::string::npos || static_cast<unsigned char>(k[0]) < 0x20) continue;
      bool printable = true;
      for (const unsigned char c : k) printable = printable && c >= 0x20 && c < 0x7f;
      if (!printable || expected.count(k) != 0) continue;
      in << k << "|v\n";
      expected[k] = java_partition(k, kPartitions);
    }
  }
  REQUIRE(expected.size() > 150);
  // The fixture's broker directory (kafka-tool.sh reads DIR/bootstrap).
  const std::string bootstrap_file = std::getenv("REVTRACE_TEST_BOOTSTRAP_FILE");
  const std::string broker_dir = bootstrap_file.substr(0, bootstrap_file.rfind('/'));
  const std::string cmd = source_dir() + "/deploy/kafka/kafka-tool.sh " + broker_dir +
                          " org.apache.kafka.tools.ConsoleProducer --topic " + java_topic +
                          " --property parse.key=true --property key.separator='|' < " + dir +
                          "/java-input.txt > " + dir + "/java-producer.log 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const auto java = read_topic(bootstrap, java_topic);
  REQUIRE(java.size() == expected.size());
  for (const auto& rec : java) {
    INFO("Java producer, key " << rec.key);
    REQUIRE(expected.count(rec.key) == 1);
    CHECK(rec.partition == expected[rec.key]);
  }
}

// The contract with the supervisor (deploy/systemd: Restart=on-failure): a processor whose worker
// stopped on a fatal Kafka error exits non-zero by itself, without waiting for a signal. Two
// instances with the same instance_id share a transactional.id: the second one's
// init_transactions fences the first, whose next transaction then fails fatally.
TEST_CASE("a fenced processor exits non-zero by itself; the healthy one exits 0 on SIGTERM",
          "[processor_exit]") {
  const std::string bootstrap = kafka_bootstrap();
  const std::string dir = temp_dir("revtrace-fenced");
  INFO("logs in " << dir);
  const std::string prefix = unique("fence") + ".";
  const std::string group = unique("fence-group");
  auto config_for = [&](const std::string& name, std::uint16_t port) {
    const std::string sub = dir + "/" + name;
    std::filesystem::create_directories(sub);
    return write_config(sub, bootstrap, prefix, 3,
                        "[processor]\ndata_dir = \"" + sub + "/state\"\ngroup_id = \"" + group +
                            "\"\ninstance_id = \"same-instance\"\nmetrics_listen = \"127.0.0.1:" +
                            std::to_string(port) + "\"\ntransaction_interval_ms = 50\n");
  };
  const std::uint16_t port_a = free_port();
  const std::uint16_t port_b = free_port();
  const auto config_a = config_for("a", port_a);
  const auto config_b = config_for("b", port_b);
  const auto created = run_revtrace(dir, {"topics", "create"}, config_a);
  INFO(created.output);
  REQUIRE(created.status == 0);

  ChildProcess a({revtrace_binary(), "processor", "--config", config_a}, {}, dir + "/a.log");
  REQUIRE(wait_for_http(port_a, "/healthz", 60s));
  ChildProcess b({revtrace_binary(), "processor", "--config", config_b}, {}, dir + "/b.log");
  REQUIRE(wait_for_http(port_b, "/healthz", 60s));

  // Records on every partition until the first instance meets its fence.
  const std::string topic = prefix + std::string(topics::kWebEvents);
  int n = 0;
  const bool fenced = wait_until(120s, [&] {
    if (!a.running() || a.log().find("the worker stopped") != std::string::npos) return true;
    std::vector<std::pair<std::string, std::string>> records;
    for (const char* site : {"a", "b", "c", "d", "e", "f"}) {
      records.emplace_back(site, "not a web event " + std::to_string(n++));
    }
    produce(bootstrap, topic, records);
    return false;
  }, 500ms);
  INFO("a: " << a.log());
  INFO("b: " << b.log());
  REQUIRE(fenced);
  // No signal was sent: it ends by itself, promptly.
  const auto status_a = a.wait(20s);
  REQUIRE(status_a.has_value());
  CHECK(*status_a == 1);
  CHECK_THAT(a.log(), Catch::Contains("fenced by a newer instance"));
  CHECK_THAT(a.log(), Catch::Contains("processor: the worker stopped on a fatal error; shutting down to be restarted"));
  CHECK_THAT(a.log(), Catch::Contains("processor stopped after a failure; exit status 1"));

  CHECK(b.running());
  b.signal(SIGTERM);
  CHECK(b.wait(60s).value_or(-1) == 0);
  CHECK_THAT(b.log(), Catch::Contains("processor stopped"));
}
