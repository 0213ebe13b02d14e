#pragma once
// Thin RAII wrappers over librdkafka's C API, and the one place where librdkafka errors are mapped
// into revtrace's taxonomy (retriable / abortable / fatal), as ../shared/docs/style.md asks.
//
// Every client gets the same base properties from KafkaConfig (bootstrap, extra client
// properties). Producers of the input topics use the murmur2 partitioner so that records keyed by
// site_id land on the same partition as the Java client's default partitioner puts them.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/config.hpp"

namespace revtrace::common::kafka {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const noexcept { rd_kafka_conf_destroy(c); }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const noexcept { rd_kafka_message_destroy(m); }
};
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* e) const noexcept { rd_kafka_error_destroy(e); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const noexcept {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
struct TopicDeleter {
  void operator()(rd_kafka_topic_t* t) const noexcept { rd_kafka_topic_destroy(t); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// What the caller should do about an error.
enum class ErrorClass : std::uint8_t {
  ok,
  retriable,  // try the same operation again (after back-off)
  abortable,  // abort the current transaction and rewind to the last committed offsets
  fatal,      // the client is unusable (e.g. fenced by a newer instance): exit, let the
              // supervisor restart the process
};

struct Status {
  ErrorClass cls = ErrorClass::ok;
  rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string message;
  [[nodiscard]] bool ok() const noexcept { return cls == ErrorClass::ok; }
};

// Maps a librdkafka error object (and consumes it) into a Status.
[[nodiscard]] Status classify(rd_kafka_error_t* error);
[[nodiscard]] Status classify(rd_kafka_resp_err_t code);

// Builds a configuration: base properties of KafkaConfig, then `extra`. Throws ConfigError on an
// unknown or invalid property (a start-up failure).
[[nodiscard]] ConfPtr make_conf(const KafkaConfig& config,
                                const std::map<std::string, std::string>& extra);

// An asynchronous producer with a background poll thread that runs delivery callbacks.
class Producer {
 public:
  // What the delivery report said; converts to the error alone, so a callback may take just that.
  struct DeliveryReport {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    std::int32_t partition = -1;
    std::int64_t offset = -1;  // where the broker stored it (-1 when it did not)
    operator rd_kafka_resp_err_t() const noexcept { return err; }  // NOLINT(google-explicit-constructor)
  };
  using Delivery = std::function<void(const DeliveryReport&)>;

  // `extra` is applied after the defaults (acks=all, idempotence, murmur2 partitioner, lz4).
  Producer(const KafkaConfig& config, const std::map<std::string, std::string>& extra = {});
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Enqueues one record. `on_delivery` runs on the poll thread once the broker acknowledged the
  // record (NO_ERROR) or it definitely failed. Returns the enqueue error (e.g.
  // RD_KAFKA_RESP_ERR__QUEUE_FULL) without calling `on_delivery` when the record was not queued.
  [[nodiscard]] rd_kafka_resp_err_t produce(std::string_view topic, std::string_view key,
                                            std::string_view value, Delivery on_delivery = {});
  // The same on a topic handle from topic(): no lookup of the topic by name for every record
  // (a lock and a copy of the name), for hot paths.
  [[nodiscard]] rd_kafka_resp_err_t produce(rd_kafka_topic_t* topic, std::string_view key,
                                            std::string_view value, Delivery on_delivery = {});
  // A handle of `name` for produce(), owned by the producer and valid as long as it lives.
  // Throws std::runtime_error when librdkafka refuses the topic. Thread-safe.
  [[nodiscard]] rd_kafka_topic_t* topic(const std::string& name);
  // Waits until every queued record was delivered or failed; false on timeout.
  [[nodiscard]] bool flush(std::chrono::milliseconds timeout);
  [[nodiscard]] int queue_length() const noexcept { return rd_kafka_outq_len(handle_.get()); }
  [[nodiscard]] rd_kafka_t* handle() const noexcept { return handle_.get(); }
  [[nodiscard]] std::uint64_t delivery_failures() const noexcept { return failures_.load(); }
  // Whether the producer can currently reach a broker (metadata request within `timeout`).
  [[nodiscard]] bool broker_reachable(std::chrono::milliseconds timeout) const;

 private:
  static void on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);

  HandlePtr handle_;
  std::mutex topics_mutex_;
  std::vector<TopicPtr> topics_;  // destroyed before handle_, as librdkafka requires
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> failures_{0};
  std::thread poller_;
};

// Creates a client handle (producer or consumer) from a configuration; throws ConfigError with
// librdkafka's message on failure.
[[nodiscard]] HandlePtr make_handle(rd_kafka_type_t type, ConfPtr conf);

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
  std::map<std::string, std::string> configs;
};

// The topics revtrace owns, with their settings (partition count from the config).
[[nodiscard]] std::vector<TopicSpec> revtrace_topics(const KafkaConfig& config);

// A topic as the cluster's metadata shows it.
struct TopicState {
  std::string name;
  int partitions = 0;          // 0 = missing
  int replication_factor = 0;  // the fewest replicas any of its partitions has
  std::string error;           // why the topic could not be described (other than "unknown topic")
};

// A topic's configuration as the broker reports it (every key, defaults included), or why it
// could not be read. A failed read is never an empty map that passes for "nothing to check".
struct TopicConfigs {
  std::map<std::string, std::string> values;
  std::string error;  // empty = read
  [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};

// What is wrong with one topic against its spec, one readable sentence per problem; empty when it
// matches. Checked: the topic exists and can be described, its partition count equals the spec's,
// its replication factor is at least the spec's, its configuration could be read and every key of
// spec.configs is reported with exactly the wanted value (a key the broker does not report is a
// problem, not a pass). Co-partitioning across topics is the caller's (`revtrace topics check`).
[[nodiscard]] std::vector<std::string> topic_problems(const TopicSpec& spec,
                                                      const TopicState& state,
                                                      const TopicConfigs& configs);

// Administrative operations used by `revtrace topics` and by tests.
class Admin {
 public:
  explicit Admin(const KafkaConfig& config);
  // Creates the topics that do not exist yet; existing ones are left alone. Returns an error text
  // per failed topic.
  [[nodiscard]] std::vector<std::string> create(const std::vector<TopicSpec>& topics,
                                                std::chrono::milliseconds timeout);
  // Throws std::runtime_error when the metadata request fails.
  [[nodiscard]] std::vector<TopicState> describe(const std::vector<std::string>& names,
                                                 std::chrono::milliseconds timeout);
  // The configurations of `topics` (in that order), in one DescribeConfigs request; a timeout or
  // a request error is every topic's `error`, a resource error that topic's.
  [[nodiscard]] std::vector<TopicConfigs> topic_configs(const std::vector<std::string>& topics,
                                                        std::chrono::milliseconds timeout);

 private:
  HandlePtr handle_;
};

// An embedded Kafka-protocol broker (librdkafka's mock cluster) for `revtrace dev`. Keeps
// everything in memory: nothing survives a restart.
class MockCluster {
 public:
  explicit MockCluster(int brokers = 1);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;
  [[nodiscard]] std::string bootstrap() const;
  void create_topic(const std::string& name, int partitions);
  // The cluster itself, for librdkafka's fault injection (rdkafka_mock.h) in tests: slow or
  // failing requests, partition leaders on chosen brokers.
  [[nodiscard]] rd_kafka_mock_cluster_t* native() const noexcept { return cluster_; }

 private:
  HandlePtr owner_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;  // owned, destroyed before owner_
};

}  // namespace revtrace::common::kafka
