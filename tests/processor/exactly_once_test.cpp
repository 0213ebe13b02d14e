// Exactly-once on a real Kafka broker. The reference is one undisturbed processor over a generated
// workload; the same workload then goes through a processor killed with SIGKILL while it
// processes (some kills inside a transaction that produced output, some restarts with the local
// state lost), three instances whose partitions move between them, a broker restart in the middle
// of processing, and `revtrace replay`. Every run must end with exactly the reference's latest
// record for every payment, byte for byte and revision included (a revision is the size of the
// payment's basis, the same in every arrival order: processor/domain/ENGINE.md, "Revisions"),
// with the same set of payments, and its read_committed output must be one history: no
// (payment, generation, revision) twice, revisions growing per payment.
//
// Each TEST_CASE is its own ctest test (tests/processor/CMakeLists.txt) and computes the
// reference in its own process.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "tests/processor/processor_harness.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/workload.hpp"

using namespace revtrace::testing;
using namespace revtrace::testing::processor_harness;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const Workload& workload() {
  static const Workload w = make_workload(20261125, 5, 120, "eos");
  return w;
}

// The reference: one processor, undisturbed, over the whole workload produced before it starts.
const RevenueHistory& reference() {
  static const RevenueHistory out = [] {
    auto d = make_deployment(kafka_bootstrap(), "ref");
    produce_range(d, workload(), 0, workload().records.size());
    ProcessorInstance p(d, "ref");
    p.env["REVTRACE_PROCESSOR_THREADS"] = "1";  // the runs under test use one thread per core
    p.start();
    const bool idle = wait_idle({&p}, 180s);
    INFO(p.log());
    REQUIRE(idle);
    REQUIRE(p.stop() == 0);
    auto h = analyse_revenue(read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed));
    // The reference itself is one history with a record for every payment.
    REQUIRE(h.repeated.empty());
    REQUIRE(h.not_growing.empty());
    REQUIRE(h.latest.size() >= workload().payments);
    return h;
  }();
  return out;
}

// Partition numbers that hold input records.
std::set<int> partitions_with_input(const Deployment& d) {
  std::set<int> out;
  for (const char* t : {kWebEvents, kRedirects, kStripeEvents}) {
    for (const auto& r : read_log(d.bootstrap, d.topic(t), Isolation::read_committed)) {
      out.insert(r.partition);
    }
  }
  return out;
}

// Waits until each instance owns `each` partition numbers in all three input topics, together
// all of them, with no lag, three scrapes in a row. Returns partition number -> owner's name
// (empty on timeout).
std::map<int, std::string> wait_spread(const std::vector<const ProcessorInstance*>& instances,
                                       std::size_t each, std::chrono::milliseconds timeout) {
  std::map<int, std::string> owners;
  int calm = 0;
  const bool ok = wait_until(timeout, [&] {
    std::map<int, std::string> now;
    std::int64_t lag = 0;
    bool shaped = true;
    for (const auto* p : instances) {
      const auto m = p->metrics();
      const auto numbers = m.partition_numbers();
      if (!m.answered || numbers.size() != each || m.assigned.size() != 3 * each) shaped = false;
      for (int n : numbers) now[n] = p->name;
      lag += m.lag;
    }
    const bool settled = shaped && lag == 0 && now.size() == static_cast<std::size_t>(kPartitions);
    calm = settled && now == owners ? calm + 1 : (settled ? 1 : 0);
    owners = now;
    return calm >= 3;
  }, 500ms);
  return ok ? owners : std::map<int, std::string>{};
}

std::string describe(const std::map<int, std::string>& owners) {
  std::string s;
  for (const auto& [p, who] : owners) s += std::to_string(p) + "->" + who + " ";
  return s;
}

}  // namespace

// Each kill lands while the instance owns all partitions and is processing a live stream: even
// kills the moment one of its output records reaches the broker (a read_uncommitted tripwire), so
// inside a transaction that produced output; odd kills at a random moment of processing. Two
// restarts also lose the local state (the disk of the instance is gone), which the next start
// rebuilds from the input log with output suppressed. Static membership gives a restarted
// instance its partitions back without waiting for the dead one's session to expire.
TEST_CASE("exactly once: kill -9 during processing, inside transactions and with lost state",
          "[kafka][eos][crash]") {
  const auto& ref = reference();
  const auto& w = workload();
  auto d = make_deployment(kafka_bootstrap(), "crash");
  ProcessorInstance p(d, "crash", /*static_member=*/true);
  // About 300 records/s while an instance is up; paused while none is.
  InputFeeder feed(d, w, 0, w.records.size(), 15, 50ms, /*paused=*/true);
  OutputTripwire tripwire(d.bootstrap, d.topic(kRevenue));
  std::mt19937 rng(7);
  std::ostringstream story;
  constexpr int kMaxKills = 10;
  int kills = 0;
  int lost_state_restarts = 0;
  int rebuilding_lives = 0;  // lives whose metrics showed records replayed with output suppressed
  std::uint64_t replayed = 0;
  while (kills < kMaxKills && !feed.done()) {
    const bool lose_state = kills == 3 || kills == 6;
    if (lose_state) {
      fs::remove_all(p.state_dir);
      ++lost_state_restarts;
    }
    p.start();
    const bool assigned = wait_until(90s, [&] { return p.metrics().assigned.size() == kInputPartitions; });
    INFO(story.str() << "\n" << p.log());
    REQUIRE(assigned);
    feed.pause(false);
    // Progress: a live transaction committed; after a lost state also records re-processed with
    // output suppressed (earlier lives committed offsets, so there is history to rebuild).
    Metrics progressed;
    const bool progress = wait_until(90s, [&] {
      progressed = p.metrics();
      return progressed.records() > 0 && progressed.committed() > 0 &&
             (!lose_state || progressed.replayed() > 0);
    }, 10ms);
    REQUIRE(progress);
    replayed += progressed.replayed();
    if (progressed.replayed() > 0) ++rebuilding_lives;
    story << "life " << kills << (lose_state ? " (state lost)" : "") << ": fed " << feed.fed()
          << ", replayed " << progressed.replayed() << ", live records " << progressed.records()
          << ", commits " << progressed.committed() << "; killed ";
    if (kills % 2 == 0) {
      tripwire.arm(p.pid());
      const bool fired = wait_until(60s, [&] { return !tripwire.armed() || feed.done(); }, 1ms);
      tripwire.disarm();
      story << (fired && !feed.done() ? "by the tripwire" : "after the feed ended") << "\n";
    } else {
      const auto moment = std::chrono::milliseconds(rng() % 700);
      std::this_thread::sleep_for(moment);  // the fault's moment, not a wait
      const auto at_kill = p.metrics();
      story << moment.count() << " ms after progress (then: live records " << at_kill.records()
            << ", commits " << at_kill.committed() << ")\n";
    }
    p.kill9();
    feed.pause(true);
    ++kills;
  }
  feed.pause(false);
  p.start();
  const bool flushed = feed.flush(120s);
  const bool idle = wait_idle({&p}, 180s);
  const auto last = p.metrics();
  if (last.replayed() > 0) ++rebuilding_lives;
  replayed += last.replayed();
  story << "last life: replayed " << last.replayed() << ", live records " << last.records()
        << ", commits " << last.committed() << ", aborts " << last.aborted() << "\n";
  const int exit = p.stop();
  INFO(story.str() << "\n" << p.log());
  REQUIRE(flushed);
  REQUIRE(feed.failures() == 0);
  REQUIRE(idle);
  REQUIRE(exit == 0);
  REQUIRE(kills >= 6);  // the feed lasted long enough for the planned kills

  const auto committed = read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed);
  const auto everything = read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_uncommitted);
  const auto history = analyse_revenue(committed);
  check_same_latest(ref, history);

  // Output of transactions that never committed: in the log (read_uncommitted sees it), never
  // shown to the read_committed reader.
  std::set<std::pair<int, std::int64_t>> visible;
  for (const auto& r : committed) visible.insert({r.partition, r.offset});
  std::size_t aborted = 0;
  std::size_t aborted_then_committed = 0;  // the same (key, generation, revision) later committed
  std::set<std::tuple<std::string, std::string>> committed_revisions;
  simdjson::dom::parser parser;
  auto revision_of = [&](const LogRecord& r) {
    simdjson::dom::element e = parser.parse(*r.value);
    return std::to_string(e["generation"].get_int64().value()) + "/" +
           std::to_string(e["revision"].get_int64().value());
  };
  for (const auto& r : committed) {
    if (r.value) committed_revisions.insert({r.key, revision_of(r)});
  }
  for (const auto& r : everything) {
    if (visible.count({r.partition, r.offset})) continue;
    ++aborted;
    if (r.value && committed_revisions.count({r.key, revision_of(r)})) ++aborted_then_committed;
  }
  const std::string log = p.log();
  std::size_t rebuild_lines = 0;
  for (std::size_t at = 0; (at = log.find("with output suppressed", at)) != std::string::npos; ++at) {
    ++rebuild_lines;
  }
  INFO(story.str() << "tripwire kills " << tripwire.fired() << "; aborted output records "
                   << aborted << " (" << aborted_then_committed
                   << " of them with a (key, generation, revision) that was later committed); "
                   << "committed records " << committed.size() << "; rebuild log lines "
                   << rebuild_lines << "; records replayed with output suppressed " << replayed);
  WARN("crash run: " << story.str() << "tripwire kills " << tripwire.fired()
                     << "; aborted output records " << aborted << " (" << aborted_then_committed
                     << " later committed under the same revision); rebuild log lines "
                     << rebuild_lines << "; replayed " << replayed);
  CHECK(tripwire.fired() >= 3);
  // Some kills landed inside a transaction that had already written output to the log, and the
  // restarted instance committed some of the same (key, generation, revision) again: had the
  // aborted copies been visible, the read_committed history above would have repeated them.
  CHECK(aborted > 0);
  CHECK(aborted_then_committed > 0);
  // ... and the recovery paths ran: the instance rebuilt state with output suppressed (at least
  // after each lost state) before going live again.
  CHECK(rebuilding_lives >= lost_state_restarts);
  CHECK(rebuild_lines >= static_cast<std::size_t>(lost_state_restarts));
  CHECK(replayed > 0);
}

// Partitions move while the workload flows: b and c join a (a's partitions move to them), b leaves
// cleanly, c dies without a goodbye while processing, b comes back. Each new owner of a partition
// with input rebuilds its state from the input log (output suppressed) before going live.
TEST_CASE("exactly once: three instances started and stopped during the run",
          "[kafka][eos][scale]") {
  const auto& ref = reference();
  const auto& w = workload();
  const std::size_t n = w.records.size();
  auto d = make_deployment(kafka_bootstrap(), "scale");
  ProcessorInstance a(d, "a");
  ProcessorInstance b(d, "b");
  ProcessorInstance c(d, "c");
  // b writes every checkpoint as an ingested table file (the others only their large ones, none
  // here): b leaves cleanly in step 3 and comes back with that state in step 4.
  b.env["REVTRACE_PROCESSOR_CHECKPOINT_INGEST_BYTES"] = "0";
  auto logs = [&] { return "a:\n" + a.log() + "\n--- b:\n" + b.log() + "\n--- c:\n" + c.log(); };
  auto log_since = [](const ProcessorInstance& p, std::size_t from) {
    const auto text = p.log();
    return from < text.size() ? text.substr(from) : std::string();
  };
  std::ostringstream story;

  // 1. a alone.
  a.start();
  produce_range(d, w, 0, n / 3);
  {
    const bool idle = wait_idle({&a}, 120s);
    INFO(logs());
    REQUIRE(idle);
  }
  const auto populated = partitions_with_input(d);
  REQUIRE(populated.size() >= 3);  // the sites spread over at least half of the partitions

  // 2. b and c join: two partition numbers each, a's history moves with them.
  b.start();
  c.start();
  auto owners = wait_spread({&a, &b, &c}, 2, 120s);
  {
    INFO(logs());
    REQUIRE(!owners.empty());
  }
  story << "three members: " << describe(owners) << "\n";
  std::size_t moved = 0;
  for (int p : populated) {
    const auto& owner = owners.at(p);
    if (owner == "a") continue;
    ++moved;
    INFO(story.str() << "partition " << p << " moved to " << owner << "\n" << logs());
    CHECK(rebuilt_partitions((owner == "b" ? b : c).log()).count(p) == 1);
  }
  CHECK(b.metrics().replayed() + c.metrics().replayed() > 0);
  produce_range(d, w, n / 3, 2 * n / 3);
  owners = wait_spread({&a, &b, &c}, 2, 120s);
  {
    INFO(logs());
    REQUIRE(!owners.empty());
  }

  // 3. b leaves cleanly: its partitions move to a and c.
  const auto b_owned = [&] {
    std::set<int> s;
    for (const auto& [p, who] : owners) if (who == "b") s.insert(p);
    return s;
  }();
  const std::size_t a_mark = a.log().size();
  const std::size_t c_mark = c.log().size();
  REQUIRE(b.stop() == 0);
  {
    // Its state went to disk as ingested table files, and none through the WAL.
    const std::regex checkpointed(R"(state checkpointed \(\d+ checkpoints: 0 written through the WAL, ([1-9]\d*) ingested)");
    INFO(b.log());
    CHECK(std::regex_search(b.log(), checkpointed));
  }
  owners = wait_spread({&a, &c}, 3, 120s);
  {
    INFO(logs());
    REQUIRE(!owners.empty());
  }
  story << "after b left: " << describe(owners) << "\n";
  for (int p : b_owned) {
    if (!populated.count(p)) continue;
    ++moved;
    const auto& owner = owners.at(p);
    INFO(story.str() << "partition " << p << " moved from b to " << owner << "\n" << logs());
    CHECK(rebuilt_partitions(log_since(owner == "a" ? a : c, owner == "a" ? a_mark : c_mark)).count(p) == 1);
  }

  // 4. The last third flows; c dies while it processes its share; b comes back.
  const auto c_owned = [&] {
    std::set<int> s;
    for (const auto& [p, who] : owners) if (who == "c") s.insert(p);
    return s;
  }();
  bool c_has_input = false;
  for (int p : c_owned) c_has_input = c_has_input || populated.count(p) > 0;
  const auto c_before = c.metrics().records();
  {
    InputFeeder feed(d, w, 2 * n / 3, n, 10, 50ms, /*paused=*/false);
    if (c_has_input) {
      const bool processing = wait_until(120s, [&] { return c.metrics().records() > c_before + 20; }, 20ms);
      INFO(logs());
      REQUIRE(processing);
    }
    c.kill9();
    story << "c killed with " << feed.fed() << " records of the last third fed\n";
    const std::size_t a_mark4 = a.log().size();
    const std::size_t b_mark4 = b.log().size();
    b.start();
    REQUIRE(feed.flush(120s));
    REQUIRE(feed.failures() == 0);
    owners = wait_spread({&a, &b}, 3, 180s);
    {
      INFO(logs());
      REQUIRE(!owners.empty());
    }
    story << "after c died and b returned: " << describe(owners) << "\n";
    for (int p : c_owned) {
      if (!populated.count(p)) continue;
      ++moved;
      const auto& owner = owners.at(p);
      INFO(story.str() << "partition " << p << " moved from c to " << owner << "\n" << logs());
      CHECK(rebuilt_partitions(log_since(owner == "a" ? a : b, owner == "a" ? a_mark4 : b_mark4)).count(p) == 1);
    }
  }
  REQUIRE(wait_idle({&a, &b}, 120s));
  const int a_exit = a.stop();
  const int b_exit = b.stop();
  INFO(story.str() << logs());
  REQUIRE(a_exit == 0);
  REQUIRE(b_exit == 0);
  CHECK(moved >= 3);  // partitions with input changed owners in the run, and were rebuilt
  WARN("scale run: " << story.str() << moved << " moves of partitions with input");
  check_same_latest(ref, analyse_revenue(read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed)));
}

// A private broker stops (cleanly) and starts again while the processor is processing a live
// stream: records keep arriving (the feeder's producer holds them while the broker is away), the
// processor is mid-stream when the broker goes, and it recovers by itself, without a restart.
TEST_CASE("exactly once: a broker restart in the middle of processing", "[kafka][eos][broker]") {
  const auto& ref = reference();
  const auto& w = workload();
  const std::string source = std::getenv("REVTRACE_SOURCE_DIR");
  const std::string broker_dir = temp_dir("revtrace-broker");
  auto run_script = [&](const std::string& script, const std::string& extra) {
    return std::system((source + "/deploy/kafka/" + script + " --dir " + broker_dir + extra +
                        " >> " + broker_dir + ".log 2>&1").c_str());
  };
  REQUIRE(run_script("start.sh", "") == 0);
  struct BrokerGuard {
    std::function<void()> stop;
    ~BrokerGuard() { stop(); }
  } guard{[&] { run_script("stop.sh", ""); }};
  std::string bootstrap;
  std::ifstream(broker_dir + "/bootstrap") >> bootstrap;
  auto d = make_deployment(bootstrap, "restart");
  ProcessorInstance p(d, "restart");
  p.start();
  {
    const bool assigned = wait_until(90s, [&] { return p.metrics().assigned.size() == kInputPartitions; });
    INFO(p.log());
    REQUIRE(assigned);
  }
  // About 100 records/s: the whole workload takes longer than the broker's restart.
  InputFeeder feed(d, w, 0, w.records.size(), 6, 60ms, /*paused=*/false);
  Metrics before;
  const bool flowing = wait_until(120s, [&] {
    before = p.metrics();
    return before.records() >= w.records.size() / 4 && before.revenue() > 0;
  }, 20ms);
  {
    INFO(p.log());
    REQUIRE(flowing);
  }
  const std::size_t fed_before = feed.fed();
  REQUIRE(run_script("stop.sh", " --keep") == 0);
  // The broker is gone: what had the processor done by then? (its /metrics answers without it)
  const auto at_stop = p.metrics();
  const std::size_t fed_at_stop = feed.fed();
  REQUIRE(run_script("start.sh", "") == 0);  // same port, same data
  const bool flushed = feed.flush(180s);
  const bool idle = wait_idle({&p}, 240s);
  const bool survived = p.running();
  const auto after = p.metrics();
  const int exit = p.stop();
  INFO("before the stop: " << before.records() << " records processed of " << fed_before
                           << " fed; with the broker down: " << at_stop.records() << " of "
                           << fed_at_stop << " fed (workload " << w.records.size()
                           << "); at the end: " << after.records() << " records, "
                           << after.committed() << " commits, " << after.aborted() << " aborts\n"
                           << p.log());
  WARN("broker restart: processed " << before.records() << " before the stop, "
                                    << at_stop.records() << " with the broker down, of "
                                    << w.records.size() << "; commits " << after.committed()
                                    << ", aborts " << after.aborted());
  REQUIRE(at_stop.answered);
  // The processor was in the middle of the stream when the broker went away.
  CHECK(at_stop.records() < w.records.size());
  CHECK(fed_at_stop < w.records.size());
  REQUIRE(flushed);
  REQUIRE(feed.failures() == 0);
  REQUIRE(idle);
  CHECK(survived);  // it recovered by itself: the same process, never restarted
  CHECK(after.records() > at_stop.records());  // and processed the rest after the restart
  CHECK(after.records() >= w.records.size());
  REQUIRE(exit == 0);
  check_same_latest(ref, analyse_revenue(read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed)));
}

// `revtrace replay` after a live run, same generation: the replay's own records (those after the
// live run's end offsets) form one history whose latest record of every payment is the live run's,
// byte for byte, with the same set of payments.
TEST_CASE("replay from scratch yields the same latest revisions", "[kafka][eos][replay]") {
  const auto& ref = reference();
  auto d = make_deployment(kafka_bootstrap(), "replay");
  produce_range(d, workload(), 0, workload().records.size());
  ProcessorInstance p(d, "replay");
  p.start();
  {
    const bool idle = wait_idle({&p}, 180s);
    INFO(p.log());
    REQUIRE(idle);
  }
  {
    // Where the batches' time went: collecting, processing and committing each took some.
    const auto m = p.metrics();
    const auto phase = [&m](const char* name) {
      return m.value(std::string("revtrace_processor_batch_phase_microseconds_total{phase=\"") + name +
                     "\"}");
    };
    CHECK(m.committed() > 0);
    CHECK(phase("poll") > 0);
    CHECK(phase("process") > 0);
    CHECK(phase("commit") > 0);
  }
  REQUIRE(p.stop() == 0);
  const auto live_log = read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed);
  const auto live = analyse_revenue(live_log);
  check_same_latest(ref, live);
  std::map<int, std::int64_t> live_end;  // last offset of the live run per partition
  for (const auto& r : live_log) live_end[r.partition] = std::max(live_end[r.partition], r.offset);

  ChildProcess replay({revtrace_binary(), "replay", "--config", p.config}, {}, d.dir + "/replay.log");
  const auto status = replay.wait(180s);
  INFO(replay.log());
  REQUIRE(status.value_or(-1) == 0);
  CHECK_THAT(replay.log(), Catch::Contains("records/s"));

  std::vector<LogRecord> replayed;
  for (auto& r : read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed)) {
    auto it = live_end.find(r.partition);
    if (it == live_end.end() || r.offset > it->second) replayed.push_back(std::move(r));
  }
  CHECK(replayed.size() >= live.latest.size());  // it re-emitted every payment
  WARN("replay: the live run wrote " << live.records << " records, the replay " << replayed.size()
                                     << ", for " << live.latest.size() << " payments");
  check_same_latest(live, analyse_revenue(replayed));
}

// Partition p is processed by thread p % threads: the latest revision of every payment is the same,
// byte for byte, for any thread count (the reference runs on one thread, this run on four, the
// other tests on one per core).
TEST_CASE("the number of processing threads changes no record", "[kafka][eos][threads]") {
  const auto& ref = reference();  // one thread
  auto d = make_deployment(kafka_bootstrap(), "threads");
  produce_range(d, workload(), 0, workload().records.size());
  ProcessorInstance p(d, "threads");
  p.env["REVTRACE_PROCESSOR_THREADS"] = "4";
  p.start();
  {
    const bool idle = wait_idle({&p}, 180s);
    INFO(p.log());
    REQUIRE(idle);
  }
  REQUIRE(p.stop() == 0);
  CHECK_THAT(p.log(), Catch::Contains("4 processing threads"));
  check_same_latest(ref, analyse_revenue(read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed)));
}

TEST_CASE("after a replay under a new generation elsewhere, an instance drops its old state",
          "[kafka][eos][generation]") {
  // Host x built its state under generation 1. The rules change: generation 2, `revtrace replay`
  // on host y. When x starts again (now generation 2), its local offsets equal the group's, so
  // only the generation it recorded tells that its state was built under the old rules: it must
  // drop it and rebuild every partition from the log, output suppressed (the replay already
  // emitted generation 2's records).
  auto d = make_deployment(kafka_bootstrap(), "generation");
  produce_range(d, workload(), 0, workload().records.size());
  ProcessorInstance x(d, "x");
  x.start();
  {
    const bool idle = wait_idle({&x}, 180s);
    INFO(x.log());
    REQUIRE(idle);
  }
  REQUIRE(x.stop() == 0);

  ProcessorInstance y(d, "y");
  ChildProcess replay({revtrace_binary(), "replay", "--config", y.config},
                      {{"REVTRACE_PROCESSOR_GENERATION", "2"}}, d.dir + "/replay.log");
  const auto status = replay.wait(180s);
  INFO(replay.log());
  REQUIRE(status.value_or(-1) == 0);
  const auto after_replay = read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed);

  x.env["REVTRACE_PROCESSOR_GENERATION"] = "2";
  x.start();
  const bool idle = wait_idle({&x}, 180s);
  const auto m = x.metrics();
  REQUIRE(x.stop() == 0);
  INFO(x.log());
  REQUIRE(idle);
  CHECK_THAT(x.log(), Catch::Contains("built by generation 1, this is generation 2"));
  // Every record was re-processed to rebuild the state, none produced output.
  CHECK(m.replayed() == workload().records.size());
  CHECK(m.records() == 0);
  CHECK_FALSE(rebuilt_partitions(x.log()).empty());
  CHECK(read_log(d.bootstrap, d.topic(kRevenue), Isolation::read_committed).size() ==
        after_replay.size());
}
