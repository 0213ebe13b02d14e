#include "common/kafka.hpp"

#include <spdlog/spdlog.h>

#include "common/topics.hpp"

#include <algorithm>
#include <stdexcept>

namespace revtrace::common::kafka {

using namespace std::chrono_literals;
namespace {

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const noexcept { rd_kafka_queue_destroy(q); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const noexcept { rd_kafka_event_destroy(e); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const noexcept { rd_kafka_AdminOptions_destroy(o); }
};
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;

void set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    throw ConfigError("kafka: property " + key + "=" + value + ": " + err);
  }
}

// Waits for one admin result event of `type` on `queue`.
EventPtr wait_result(rd_kafka_queue_t* queue, rd_kafka_event_type_t type,
                     std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    EventPtr ev(rd_kafka_queue_poll(queue, 100));
    if (ev && rd_kafka_event_type(ev.get()) == type) return ev;
  }
  return nullptr;
}

}  // namespace

Status classify(rd_kafka_error_t* error) {
  if (error == nullptr) return {};
  ErrorPtr owned(error);
  Status s;
  s.code = rd_kafka_error_code(error);
  s.message = rd_kafka_error_string(error);
  if (rd_kafka_error_is_fatal(error)) {
    s.cls = ErrorClass::fatal;
  } else if (rd_kafka_error_txn_requires_abort(error)) {
    s.cls = ErrorClass::abortable;
  } else if (rd_kafka_error_is_retriable(error)) {
    s.cls = ErrorClass::retriable;
  } else {
    // Not flagged by librdkafka: treat as abortable, the safe choice inside a transaction (abort
    // and rewind re-does the work exactly; a fatal error would be flagged as such).
    s.cls = ErrorClass::abortable;
  }
  return s;
}

Status classify(rd_kafka_resp_err_t code) {
  Status s;
  s.code = code;
  if (code == RD_KAFKA_RESP_ERR_NO_ERROR) return s;
  s.message = rd_kafka_err2str(code);
  switch (code) {
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      s.cls = ErrorClass::fatal;
      break;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
      s.cls = ErrorClass::retriable;
      break;
    default:
      s.cls = ErrorClass::abortable;
  }
  return s;
}

ConfPtr make_conf(const KafkaConfig& config, const std::map<std::string, std::string>& extra) {
  ConfPtr conf(rd_kafka_conf_new());
  set(conf.get(), "bootstrap.servers", config.bootstrap);
  set(conf.get(), "client.id", "revtrace");
  for (const auto& [k, v] : config.client_properties) set(conf.get(), k, v);
  for (const auto& [k, v] : extra) set(conf.get(), k, v);
  return conf;
}

HandlePtr make_handle(rd_kafka_type_t type, ConfPtr conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
  if (rk == nullptr) throw ConfigError(std::string("kafka: cannot create client: ") + err);
  (void)conf.release();  // rd_kafka_new took ownership
  return HandlePtr(rk);
}

Producer::Producer(const KafkaConfig& config, const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> props{
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"partitioner", "murmur2_random"},
      {"compression.type", "lz4"},
      {"linger.ms", "2"},
      {"message.timeout.ms", "30000"},
  };
  for (const auto& [k, v] : extra) props[k] = v;
  ConfPtr conf = make_conf(config, props);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::on_delivery_report);
  rd_kafka_conf_set_opaque(conf.get(), this);
  handle_ = make_handle(RD_KAFKA_PRODUCER, std::move(conf));
  poller_ = std::thread([this] {
    while (!stop_.load(std::memory_order_relaxed)) rd_kafka_poll(handle_.get(), 50);
  });
}

Producer::~Producer() {
  stop_.store(true);
  if (poller_.joinable()) poller_.join();
  // Remaining delivery callbacks (if any) are served by the final flush in rd_kafka_destroy's
  // caller; anything still queued here was given up by the owner.
  rd_kafka_flush(handle_.get(), 0);
  rd_kafka_purge(handle_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(handle_.get(), 0);
}

void Producer::on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) self->failures_.fetch_add(1);
  // The per-message callback was handed to librdkafka as a released unique_ptr; take it back.
  std::unique_ptr<Delivery> cb(static_cast<Delivery*>(msg->_private));
  if (cb && *cb) (*cb)(DeliveryReport{msg->err, msg->partition, msg->err ? -1 : msg->offset});
}

rd_kafka_resp_err_t Producer::produce(std::string_view topic, std::string_view key,
                                      std::string_view value, Delivery on_delivery) {
  auto cb = on_delivery ? std::make_unique<Delivery>(std::move(on_delivery)) : nullptr;
  const std::string topic_name(topic);
  rd_kafka_resp_err_t err = rd_kafka_producev(
      handle_.get(), RD_KAFKA_V_TOPIC(topic_name.c_str()),
      RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(cb.get()), RD_KAFKA_V_END);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) (void)cb.release();  // owned by librdkafka until the DR
  return err;
}

rd_kafka_resp_err_t Producer::produce(rd_kafka_topic_t* topic, std::string_view key,
                                      std::string_view value, Delivery on_delivery) {
  auto cb = on_delivery ? std::make_unique<Delivery>(std::move(on_delivery)) : nullptr;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      handle_.get(), RD_KAFKA_V_RKT(topic),
      RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(cb.get()), RD_KAFKA_V_END);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) (void)cb.release();  // owned by librdkafka until the DR
  return err;
}

rd_kafka_topic_t* Producer::topic(const std::string& name) {
  std::lock_guard lock(topics_mutex_);
  TopicPtr t(rd_kafka_topic_new(handle_.get(), name.c_str(), nullptr));
  if (!t) {
    throw std::runtime_error("kafka: no handle for topic " + name + ": " +
                             rd_kafka_err2str(rd_kafka_last_error()));
  }
  topics_.push_back(std::move(t));
  return topics_.back().get();
}

bool Producer::flush(std::chrono::milliseconds timeout) {
  return rd_kafka_flush(handle_.get(), static_cast<int>(timeout.count())) ==
         RD_KAFKA_RESP_ERR_NO_ERROR;
}

bool Producer::broker_reachable(std::chrono::milliseconds timeout) const {
  const rd_kafka_metadata_t* md = nullptr;
  const auto err =
      rd_kafka_metadata(handle_.get(), 0, nullptr, &md, static_cast<int>(timeout.count()));
  if (md != nullptr) rd_kafka_metadata_destroy(md);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

std::vector<TopicSpec> revtrace_topics(const KafkaConfig& config) {
  const std::map<std::string, std::string> forever{{"retention.ms", "-1"},
                                                   {"retention.bytes", "-1"},
                                                   {"cleanup.policy", "delete"}};
  std::vector<TopicSpec> specs;
  for (auto name : topics::kInputTopics) {
    specs.push_back({topics::name(config, name), config.partitions, config.replication_factor, forever});
  }
  // The output keeps the latest revision of every payment forever (compaction by key).
  specs.push_back({topics::name(config, topics::kAttributedRevenue), config.partitions,
                   config.replication_factor,
                   {{"cleanup.policy", "compact"}, {"retention.ms", "-1"}}});
  specs.push_back({topics::name(config, topics::kDeadLetter), config.partitions, config.replication_factor,
                   forever});
  specs.push_back({topics::name(config, topics::kAdSpend), config.partitions, config.replication_factor,
                   {{"cleanup.policy", "compact"}, {"retention.ms", "-1"}}});
  specs.push_back({topics::name(config, topics::kPaymentLinks), config.partitions,
                   config.replication_factor, forever});
  return specs;
}

Admin::Admin(const KafkaConfig& config) {
  handle_ = make_handle(RD_KAFKA_PRODUCER, make_conf(config, {}));
}

std::vector<std::string> Admin::create(const std::vector<TopicSpec>& specs,
                                       std::chrono::milliseconds timeout) {
  std::vector<std::string> errors;
  std::vector<rd_kafka_NewTopic_t*> raw;
  char err[512];
  for (const auto& spec : specs) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(spec.name.c_str(), spec.partitions,
                                                    spec.replication_factor, err, sizeof err);
    if (nt == nullptr) {
      errors.push_back(spec.name + ": " + err);
      continue;
    }
    for (const auto& [k, v] : spec.configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    raw.push_back(nt);
  }
  QueuePtr queue(rd_kafka_queue_new(handle_.get()));
  AdminOptionsPtr opts(rd_kafka_AdminOptions_new(handle_.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_operation_timeout(opts.get(), static_cast<int>(timeout.count()), err,
                                              sizeof err);
  rd_kafka_CreateTopics(handle_.get(), raw.data(), raw.size(), opts.get(), queue.get());
  rd_kafka_NewTopic_destroy_array(raw.data(), raw.size());
  EventPtr ev = wait_result(queue.get(), RD_KAFKA_EVENT_CREATETOPICS_RESULT, timeout + timeout);
  if (!ev) {
    errors.emplace_back("timed out waiting for CreateTopics");
    return errors;
  }
  if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    errors.emplace_back(rd_kafka_event_error_string(ev.get()));
    return errors;
  }
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &n);
  for (size_t i = 0; i < n; ++i) {
    const auto code = rd_kafka_topic_result_error(results[i]);
    if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      const char* msg = rd_kafka_topic_result_error_string(results[i]);
      errors.push_back(std::string(rd_kafka_topic_result_name(results[i])) + ": " +
                       (msg != nullptr ? msg : rd_kafka_err2str(code)));
    }
  }
  return errors;
}

std::vector<TopicState> Admin::describe(const std::vector<std::string>& names,
                                        std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  const auto err =
      rd_kafka_metadata(handle_.get(), 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(std::string("kafka: metadata request failed: ") +
                             rd_kafka_err2str(err));
  }
  std::vector<TopicState> out;
  for (const auto& name : names) {
    TopicState st{name};
    for (int i = 0; i < md->topic_cnt; ++i) {
      const auto& t = md->topics[i];
      if (name != t.topic) continue;
      if (t.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st.partitions = t.partition_cnt;
        for (int p = 0; p < t.partition_cnt; ++p) {
          const int replicas = t.partitions[p].replica_cnt;
          if (p == 0 || replicas < st.replication_factor) st.replication_factor = replicas;
        }
      } else if (t.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        st.error = rd_kafka_err2str(t.err);
      }
    }
    out.push_back(st);
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

std::vector<TopicConfigs> Admin::topic_configs(const std::vector<std::string>& topics,
                                               std::chrono::milliseconds timeout) {
  std::vector<TopicConfigs> out(topics.size());
  if (topics.empty()) return out;
  auto fail_all = [&out](const std::string& why) {
    for (auto& c : out) c.error = why;
    return out;
  };
  std::vector<rd_kafka_ConfigResource_t*> resources;
  for (const auto& t : topics) {
    resources.push_back(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, t.c_str()));
  }
  QueuePtr queue(rd_kafka_queue_new(handle_.get()));
  char err[512];
  AdminOptionsPtr opts(rd_kafka_AdminOptions_new(handle_.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS));
  (void)rd_kafka_AdminOptions_set_request_timeout(opts.get(), static_cast<int>(timeout.count()),
                                                  err, sizeof err);
  rd_kafka_DescribeConfigs(handle_.get(), resources.data(), resources.size(), opts.get(),
                           queue.get());
  rd_kafka_ConfigResource_destroy_array(resources.data(), resources.size());
  // A little longer than the request timeout, so that librdkafka's own timeout (with its message)
  // normally answers first.
  EventPtr ev = wait_result(queue.get(), RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, timeout + 2s);
  if (!ev) return fail_all("no DescribeConfigs answer within " + std::to_string(timeout.count()) + " ms");
  if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail_all(std::string("DescribeConfigs failed: ") + rd_kafka_event_error_string(ev.get()));
  }
  for (auto& c : out) c.error = "not in the DescribeConfigs answer";
  size_t n = 0;
  const rd_kafka_ConfigResource_t** rs =
      rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev.get()), &n);
  for (size_t i = 0; i < n; ++i) {
    const auto it = std::find(topics.begin(), topics.end(), rd_kafka_ConfigResource_name(rs[i]));
    if (it == topics.end()) continue;
    auto& c = out[static_cast<std::size_t>(it - topics.begin())];
    c.error.clear();
    if (const auto code = rd_kafka_ConfigResource_error(rs[i]); code != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* msg = rd_kafka_ConfigResource_error_string(rs[i]);
      c.error = std::string("DescribeConfigs failed: ") +
                (msg != nullptr && *msg != '\0' ? msg : rd_kafka_err2str(code));
      continue;
    }
    size_t cn = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(rs[i], &cn);
    for (size_t j = 0; j < cn; ++j) {
      const char* v = rd_kafka_ConfigEntry_value(entries[j]);
      c.values[rd_kafka_ConfigEntry_name(entries[j])] = v != nullptr ? v : "";
    }
    if (c.values.empty()) c.error = "DescribeConfigs answered no configuration entries";
  }
  return out;
}

std::vector<std::string> topic_problems(const TopicSpec& spec, const TopicState& state,
                                        const TopicConfigs& configs) {
  std::vector<std::string> problems;
  if (!state.error.empty()) {
    problems.push_back("cannot be described: " + state.error);
    return problems;
  }
  if (state.partitions == 0) {
    problems.emplace_back("does not exist");
    return problems;
  }
  if (state.partitions != spec.partitions) {
    problems.push_back(std::to_string(state.partitions) + " partitions, want " +
                       std::to_string(spec.partitions) + " (kafka.partitions)");
  }
  if (state.replication_factor < spec.replication_factor) {
    problems.push_back("replication factor " + std::to_string(state.replication_factor) +
                       ", want at least " + std::to_string(spec.replication_factor) +
                       " (kafka.replication_factor)");
  }
  if (!configs.ok()) {
    problems.push_back("its configuration cannot be read (" + configs.error +
                       "), so its settings are unverified");
    return problems;
  }
  for (const auto& [key, want] : spec.configs) {
    const auto it = configs.values.find(key);
    if (it == configs.values.end()) {
      problems.push_back(key + " is not reported by the broker, want " + want);
    } else if (it->second != want) {
      problems.push_back(key + "=" + it->second + ", want " + want);
    }
  }
  return problems;
}

MockCluster::MockCluster(int brokers) {
  ConfPtr conf(rd_kafka_conf_new());
  set(conf.get(), "client.id", "revtrace-embedded-broker");
  set(conf.get(), "log_level", "3");  // this handle only owns the broker; it never connects
  owner_ = make_handle(RD_KAFKA_PRODUCER, std::move(conf));
  cluster_ = rd_kafka_mock_cluster_new(owner_.get(), brokers);
  if (cluster_ == nullptr) throw ConfigError("kafka: cannot start the embedded broker");
}

MockCluster::~MockCluster() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
}

std::string MockCluster::bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

void MockCluster::create_topic(const std::string& name, int partitions) {
  rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1);
}

}  // namespace revtrace::common::kafka
