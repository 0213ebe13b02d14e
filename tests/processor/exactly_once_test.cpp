// Exactly-once on a real Kafka broker: a reference run of one processor over a generated
// workload, then the same workload through processors that are killed with SIGKILL at random
// moments, through three instances stopped and started during the run, across a broker restart,
// and through `revtrace replay`. Every run must end with exactly the reference's latest record
// for every payment, and no (payment, generation, revision) may appear twice in a run's output.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <tuple>
#include <thread>

#include "tests/support/test_support.hpp"
#include "tests/support/workload.hpp"

using namespace revtrace::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kInputs[] = {"revtrace.web-events.v1", "revtrace.checkout-redirects.v1",
                                   "revtrace.stripe-events.v1"};

struct Deployment {
  std::string dir;
  std::string prefix;
  std::string bootstrap;
  std::string group;
};

std::string write_config(const Deployment& d, const std::string& name, std::uint16_t metrics_port) {
  const std::string path = d.dir + "/" + name + ".toml";
  std::ofstream out(path);
  out << "log_level = \"info\"\n[kafka]\nbootstrap = \"" << d.bootstrap
      << "\"\npartitions = 6\ntopic_prefix = \"" << d.prefix << "\"\n"
      // A dead instance leaves the group after 6 s instead of 45 s, and a rebalance waits at most
      // 15 s for members that do not rejoin (instances killed in the middle of one).
      << "[kafka.client_properties]\n\"session.timeout.ms\" = \"6000\"\n"
      << "\"max.poll.interval.ms\" = \"15000\"\n"
      << "\"heartbeat.interval.ms\" = \"1000\"\n[processor]\ndata_dir = \""
      << d.dir << "/" << name << "-state\"\ngroup_id = \"" << d.group << "\"\ninstance_id = \""
      << name << "\"\nmetrics_listen = \"127.0.0.1:" << metrics_port
      << "\"\ntransaction_interval_ms = 50\n";
  return path;
}

Deployment make_deployment(const std::string& bootstrap, const std::string& tag) {
  Deployment d{temp_dir("revtrace-eos-" + tag), unique(tag) + ".", bootstrap, unique("group-" + tag)};
  const auto config = write_config(d, "topics", free_port());
  ChildProcess create({revtrace_binary(), "topics", "create", "--config", config}, {},
                      d.dir + "/topics.log");
  INFO(create.log());
  REQUIRE(create.wait(60s).value_or(-1) == 0);
  return d;
}

void produce_range(const Deployment& d, const Workload& w, std::size_t from, std::size_t to) {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> by_topic;
  for (std::size_t i = from; i < to && i < w.records.size(); ++i) {
    by_topic[d.prefix + w.records[i].topic].emplace_back(w.records[i].key, w.records[i].value);
  }
  for (auto& [topic, records] : by_topic) produce(d.bootstrap, topic, records);
}

// Waits until the processors behind `ports` together own all 18 input partitions with no lag,
// three polls in a row (the last batch's transaction commits within one poll interval).
bool wait_idle(const std::vector<std::uint16_t>& ports, std::chrono::seconds timeout) {
  int calm = 0;
  return wait_until(timeout, [&] {
    std::int64_t total = 0;
    int partitions = 0;
    for (auto p : ports) {
      auto [sum, n] = processor_lag(p);
      if (sum < 0) return (calm = 0), false;
      total += sum;
      partitions += n;
    }
    calm = (total == 0 && partitions == 18) ? calm + 1 : 0;
    return calm >= 3;
  }, 500ms);
}

struct Output {
  std::map<std::string, std::string> latest;  // key -> value of the highest (generation, revision)
  std::size_t records = 0;
  std::vector<std::string> duplicates;  // "(key, generation, revision)" seen twice
};

Output read_output(const Deployment& d) {
  Output out;
  simdjson::dom::parser parser;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> best;
  std::set<std::tuple<std::string, std::int64_t, std::int64_t>> seen;
  for (auto& r : read_topic(d.bootstrap, d.prefix + "revtrace.attributed-revenue.v1")) {
    ++out.records;
    if (r.value.empty()) {  // a tombstone retires a merged payment key
      out.latest.erase(r.key);
      best.erase(r.key);
      continue;
    }
    simdjson::dom::element rec = parser.parse(r.value);
    const std::int64_t generation = rec["generation"].get_int64();
    const std::int64_t revision = rec["revision"].get_int64();
    if (!seen.insert({r.key, generation, revision}).second) {
      out.duplicates.push_back(r.key + " g" + std::to_string(generation) + " r" + std::to_string(revision));
    }
    auto it = best.find(r.key);
    if (it == best.end() || std::make_pair(generation, revision) > it->second) {
      best[r.key] = {generation, revision};
      out.latest[r.key] = r.value;
    }
  }
  return out;
}

// The record without its revision number. Revisions are numbered per processing history today
// (previous + 1 on every change); the content of the latest record is what must be identical.
std::string without_revision(const std::string& value) {
  const auto at = value.find("\"revision\":");
  if (at == std::string::npos) return value;
  return value.substr(0, at) + value.substr(value.find(',', at) + 1);
}

void require_same(const Output& reference, const Output& run) {
  CHECK(run.duplicates.empty());
  for (const auto& d : run.duplicates) UNSCOPED_INFO("duplicate " << d);
  REQUIRE(run.latest.size() == reference.latest.size());
  std::size_t differing = 0;
  for (const auto& [key, value] : reference.latest) {
    auto it = run.latest.find(key);
    if (it == run.latest.end() || without_revision(it->second) != without_revision(value)) {
      if (++differing <= 3) {
        UNSCOPED_INFO(key << "\n  reference: " << value << "\n  run:       "
                          << (it == run.latest.end() ? "(missing)" : it->second));
      }
    }
  }
  CHECK(differing == 0);
}

struct Processor {
  Processor(const Deployment& d, const std::string& name)
      : port(free_port()), config(write_config(d, name, port)),
        log(d.dir + "/" + name + ".log") {}
  void start() {
    child = std::make_unique<ChildProcess>(
        std::vector<std::string>{revtrace_binary(), "processor", "--config", config},
        std::map<std::string, std::string>{}, log);
  }
  void kill9() {
    child->signal(SIGKILL);
    (void)child->wait(30s);
  }
  int stop() {
    child->signal(SIGTERM);
    return child->wait(60s).value_or(-1);
  }
  std::uint16_t port;
  std::string config;
  std::string log;
  std::unique_ptr<ChildProcess> child;
};

const Workload& workload() {
  static const Workload w = make_workload(20261125, 5, 120, "eos");
  return w;
}

// The reference: one processor, undisturbed, over the whole workload.
const Output& reference() {
  static const Output out = [] {
    auto d = make_deployment(kafka_bootstrap(), "ref");
    produce_range(d, workload(), 0, workload().records.size());
    Processor p(d, "ref");
    p.start();
    INFO(p.child->log());
    REQUIRE(wait_idle({p.port}, 180s));
    REQUIRE(p.stop() == 0);
    return read_output(d);
  }();
  return out;
}

}  // namespace

TEST_CASE("exactly once: kill -9 at random moments while the workload flows", "[kafka][eos]") {
  const auto& ref = reference();
  REQUIRE(ref.latest.size() >= workload().payments);  // every payment has a record
  auto d = make_deployment(kafka_bootstrap(), "crash");
  Processor p(d, "crash");
  std::mt19937 rng(7);
  const auto& w = workload();
  const std::size_t chunks = 8;
  for (std::size_t c = 0; c < chunks; ++c) {
    produce_range(d, w, c * w.records.size() / chunks, (c + 1) * w.records.size() / chunks);
    p.start();
    // Let it run into the middle of something: start-up, catch-up, or a transaction.
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 1500));  // the fault's moment, not a wait
    p.kill9();
  }
  p.start();
  INFO(p.child->log());
  REQUIRE(wait_idle({p.port}, 180s));
  REQUIRE(p.stop() == 0);
  require_same(ref, read_output(d));
}

// Partitions move while the workload flows: b leaves cleanly, c dies, b comes back. Each new
// owner rebuilds a partition's state from the input log before going live.
TEST_CASE("exactly once: three instances started and stopped during the run", "[kafka][eos][scale]") {
  const auto& ref = reference();
  auto d = make_deployment(kafka_bootstrap(), "scale");
  Processor a(d, "a");
  Processor b(d, "b");
  Processor c(d, "c");
  const auto& w = workload();
  a.start();
  produce_range(d, w, 0, w.records.size() / 3);
  b.start();
  c.start();
  produce_range(d, w, w.records.size() / 3, 2 * w.records.size() / 3);
  REQUIRE(b.stop() == 0);  // its partitions move to a and c
  produce_range(d, w, 2 * w.records.size() / 3, w.records.size());
  c.kill9();               // and c dies without a goodbye
  b.start();
  const bool idle = wait_idle({a.port, b.port}, 240s);
  const int a_exit = a.stop();
  const int b_exit = b.stop();
  // The logs as they are at the end (INFO takes its text when it is declared).
  INFO("a:\n" << a.child->log() << "\n--- b:\n" << b.child->log() << "\n--- c:\n" << c.child->log());
  REQUIRE(idle);
  REQUIRE(a_exit == 0);
  REQUIRE(b_exit == 0);
  require_same(ref, read_output(d));
}

TEST_CASE("exactly once: a broker restart in the middle of processing", "[kafka][eos]") {
  const auto& ref = reference();
  const std::string source = std::getenv("REVTRACE_SOURCE_DIR");
  const std::string broker_dir = temp_dir("revtrace-broker");
  auto run_script = [&](const std::string& script, const std::string& extra) {
    return std::system((source + "/deploy/kafka/" + script + " --dir " + broker_dir + extra +
                        " > " + broker_dir + ".log 2>&1").c_str());
  };
  REQUIRE(run_script("start.sh", "") == 0);
  std::string bootstrap;
  std::ifstream(broker_dir + "/bootstrap") >> bootstrap;
  auto d = make_deployment(bootstrap, "restart");
  const auto& w = workload();
  produce_range(d, w, 0, w.records.size() / 2);
  Processor p(d, "restart");
  p.start();
  std::this_thread::sleep_for(1500ms);  // the fault's moment, not a wait
  REQUIRE(run_script("stop.sh", " --keep") == 0);
  REQUIRE(run_script("start.sh", "") == 0);  // same port, same data
  produce_range(d, w, w.records.size() / 2, w.records.size());
  INFO(p.child->log());
  REQUIRE(wait_idle({p.port}, 240s));
  CHECK(p.child->running());  // it recovered by itself
  REQUIRE(p.stop() == 0);
  require_same(ref, read_output(d));
  run_script("stop.sh", "");
}

TEST_CASE("replay from scratch yields the same latest revisions", "[kafka][eos]") {
  const auto& ref = reference();
  auto d = make_deployment(kafka_bootstrap(), "replay");
  produce_range(d, workload(), 0, workload().records.size());
  Processor p(d, "replay");
  p.start();
  REQUIRE(wait_idle({p.port}, 180s));
  REQUIRE(p.stop() == 0);
  const auto before = read_output(d);
  require_same(ref, before);
  ChildProcess replay({revtrace_binary(), "replay", "--config", p.config}, {}, d.dir + "/replay.log");
  INFO(replay.log());
  REQUIRE(replay.wait(180s).value_or(-1) == 0);
  CHECK_THAT(replay.log(), Catch::Contains("records/s"));
  const auto after = read_output(d);
  CHECK(after.records > before.records);  // it re-emitted
  // Same generation: the replayed records repeat the same revisions with the same content.
  REQUIRE(after.latest.size() == before.latest.size());
  for (const auto& [key, value] : before.latest) CHECK(after.latest.at(key) == value);
}
