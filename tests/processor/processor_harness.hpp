#pragma once
// What the processor's integration tests share: a deployment (its own topic prefix and consumer
// group on a broker), `revtrace processor` instances and their /metrics, topic readers that see
// what a read_committed or a read_uncommitted consumer sees, a paced input feeder, a tripwire that
// kills a process the moment its output reaches the broker, and the analysis of an
// attributed-revenue log (the latest record of every payment, repeated or shrinking revisions).
//
// Every wait has a deadline (wait_until); the only timed pauses are the pace of the feeder and a
// fault's chosen moment.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/test_support.hpp"
#include "tests/support/workload.hpp"

namespace revtrace::testing::processor_harness {

inline constexpr int kPartitions = 6;
// Every input topic has kPartitions partitions: a group that owns them all owns 18.
inline constexpr int kInputPartitions = 3 * kPartitions;
inline constexpr const char* kWebEvents = "revtrace.web-events.v1";
inline constexpr const char* kRedirects = "revtrace.checkout-redirects.v1";
inline constexpr const char* kStripeEvents = "revtrace.stripe-events.v1";
inline constexpr const char* kRevenue = "revtrace.attributed-revenue.v1";
inline constexpr const char* kDeadLetter = "revtrace.dead-letter.v1";

// One revtrace deployment on a broker: topics under its own prefix, one consumer group.
struct Deployment {
  std::string dir;
  std::string prefix;
  std::string bootstrap;
  std::string group;
  [[nodiscard]] std::string topic(const std::string& contract) const { return prefix + contract; }
};

// Creates the deployment's topics (`revtrace topics create`). REQUIREs success.
[[nodiscard]] Deployment make_deployment(const std::string& bootstrap, const std::string& tag);

// Produces workload records [from, to) topic by topic, in workload order: the order of every
// partition is the workload's, whichever way the records are split into calls.
void produce_range(const Deployment& d, const Workload& w, std::size_t from, std::size_t to);

// One scrape of a processor's /metrics.
struct Metrics {
  bool answered = false;
  std::map<std::string, double> series;          // "name{labels}" -> value
  std::set<std::pair<std::string, int>> assigned;  // (topic, partition) with a consumer-lag series
  std::int64_t lag = 0;                            // sum of the consumer-lag series
  [[nodiscard]] double value(const std::string& name) const;
  [[nodiscard]] std::uint64_t records() const;    // live input records processed
  [[nodiscard]] std::uint64_t replayed() const;   // records re-processed with output suppressed
  [[nodiscard]] std::uint64_t committed() const;  // committed transactions
  [[nodiscard]] std::uint64_t aborted() const;    // aborted transactions
  [[nodiscard]] std::uint64_t revenue() const;    // attributed-revenue records produced
  [[nodiscard]] std::set<int> partition_numbers() const;
};
[[nodiscard]] Metrics scrape(std::uint16_t port);

// A `revtrace processor` of a deployment. `static_member` sets group.instance.id = name (static
// group membership): a restarted instance takes its predecessor's place in the group at once
// instead of waiting for the dead member's session to time out.
class ProcessorInstance {
 public:
  ProcessorInstance(const Deployment& d, const std::string& name, bool static_member = false);
  void start();
  void kill9();
  // SIGTERM; the exit status (-1 when it did not exit within a minute).
  int stop();
  [[nodiscard]] bool running() const;
  [[nodiscard]] std::string log() const;  // every run of this instance, appended
  [[nodiscard]] Metrics metrics() const { return scrape(port); }
  [[nodiscard]] int pid() const { return child ? child->pid() : -1; }

  std::string name;
  std::uint16_t port;
  std::string config;
  std::map<std::string, std::string> env;  // extra environment (REVTRACE_* overrides)
  std::string state_dir;
  std::string log_file;
  std::unique_ptr<ChildProcess> child;
};

// Waits until the instances together own all 18 input partitions with no lag, three scrapes in a
// row (the last batch's transaction commits within one poll interval).
[[nodiscard]] bool wait_idle(const std::vector<const ProcessorInstance*>& instances,
                             std::chrono::milliseconds timeout);

// A record as a consumer sees it, with a null value (tombstone) told apart from an empty one.
struct LogRecord {
  std::string key;
  std::optional<std::string> value;
  int partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp = -1;
};
enum class Isolation { read_committed, read_uncommitted };
// Every record of every partition of `topic` from the beginning to the end (the last stable
// offset for read_committed, the high watermark for read_uncommitted). For read_committed it first
// waits until no transaction is open (its commit markers are written), and throws after 30 s: the
// tests read after the producers stopped, and a committed transaction must then be visible.
[[nodiscard]] std::vector<LogRecord> read_log(const std::string& bootstrap, const std::string& topic,
                                              Isolation isolation);

// An attributed-revenue log, read in order. Records of one key share a partition, so the log
// order of a key is its offset order.
struct RevenueHistory {
  std::map<std::string, std::string> latest;  // key -> its last record (a tombstone removes it)
  std::size_t records = 0;
  std::vector<std::string> repeated;     // a (key, generation, revision) that appears twice
  std::vector<std::string> not_growing;  // a record whose (generation, revision) is not above the
                                         // key's previous record's
};
[[nodiscard]] RevenueHistory analyse_revenue(const std::vector<LogRecord>& records);

// CHECKs that `run` is one history (no repeated and no shrinking revision) whose latest record of
// every payment is the reference's, byte for byte, revision included, with the same set of keys.
void check_same_latest(const RevenueHistory& reference, const RevenueHistory& run);

// Produces workload records [from, to) in slices of `slice` records every `interval` while not
// paused, with an idempotent producer (order per partition kept across broker restarts).
class InputFeeder {
 public:
  InputFeeder(const Deployment& d, const Workload& w, std::size_t from, std::size_t to,
              std::size_t slice, std::chrono::milliseconds interval, bool paused);
  ~InputFeeder();
  InputFeeder(const InputFeeder&) = delete;
  InputFeeder& operator=(const InputFeeder&) = delete;
  void pause(bool paused);
  [[nodiscard]] bool done() const { return next_.load() >= to_; }  // all handed to the producer
  [[nodiscard]] std::size_t fed() const { return next_.load() - from_; }
  // Waits until every record was acknowledged; false on timeout.
  [[nodiscard]] bool flush(std::chrono::milliseconds timeout);
  [[nodiscard]] std::size_t failures() const { return failures_.load(); }

 private:
  void run();
  const Deployment& d_;
  const Workload& w_;
  std::size_t from_;
  std::size_t to_;
  std::size_t slice_;
  std::chrono::milliseconds interval_;
  std::atomic<std::size_t> next_;
  std::atomic<bool> paused_;
  std::atomic<std::size_t> failures_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  struct Producer;
  std::unique_ptr<Producer> producer_;
  std::thread thread_;
};

// A read_uncommitted consumer at the end of `topic`. Armed with a pid, it sends SIGKILL to that
// process as soon as a new record reaches the broker: that record's transaction has not committed
// yet unless the producer commits faster than one fetch round trip.
class OutputTripwire {
 public:
  OutputTripwire(const std::string& bootstrap, const std::string& topic);
  ~OutputTripwire();
  OutputTripwire(const OutputTripwire&) = delete;
  OutputTripwire& operator=(const OutputTripwire&) = delete;
  void arm(int pid);
  void disarm();
  [[nodiscard]] bool armed() const { return pid_.load() > 0; }
  [[nodiscard]] std::size_t fired() const { return fired_.load(); }
  [[nodiscard]] std::size_t seen() const { return seen_.load(); }

 private:
  void run();
  struct Consumer;
  std::unique_ptr<Consumer> consumer_;
  std::atomic<int> pid_{0};
  std::atomic<std::size_t> fired_{0};
  std::atomic<std::size_t> seen_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Partition numbers named in "<topic>[<p>]: rebuilding state from offset ..." lines of a log: the
// partitions whose state the instance rebuilt from the input log with output suppressed.
[[nodiscard]] std::set<int> rebuilt_partitions(const std::string& log);

// Standard base64 (RFC 4648, padded), written here independently of the processor's encoder.
[[nodiscard]] std::string base64(const std::string& bytes);

}  // namespace revtrace::testing::processor_harness
