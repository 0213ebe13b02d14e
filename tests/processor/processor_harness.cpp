#include "tests/processor/processor_harness.hpp"

#include <librdkafka/rdkafka.h>
#include <simdjson.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace revtrace::testing::processor_harness {

using namespace std::chrono_literals;

namespace {

std::string write_config(const Deployment& d, const std::string& name, std::uint16_t metrics_port,
                         bool static_member) {
  const std::string path = d.dir + "/" + name + ".toml";
  std::ofstream out(path);
  out << "log_level = \"info\"\n[kafka]\nbootstrap = \"" << d.bootstrap << "\"\npartitions = "
      << kPartitions << "\ntopic_prefix = \"" << d.prefix << "\"\n"
      // A dead instance leaves the group after 6 s instead of 45 s, and a rebalance waits at most
      // 15 s for members that do not rejoin (instances killed in the middle of one).
      << "[kafka.client_properties]\n\"session.timeout.ms\" = \"6000\"\n"
      << "\"max.poll.interval.ms\" = \"15000\"\n"
      << "\"heartbeat.interval.ms\" = \"1000\"\n";
  if (static_member) out << "\"group.instance.id\" = \"" << name << "\"\n";
  out << "[processor]\ndata_dir = \"" << d.dir << "/" << name << "-state\"\ngroup_id = \""
      << d.group << "\"\ninstance_id = \"" << name << "\"\nmetrics_listen = \"127.0.0.1:"
      << metrics_port << "\"\ntransaction_interval_ms = 50\n";
  return path;
}

struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
using Client = std::unique_ptr<rd_kafka_t, ClientDeleter>;
struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const noexcept {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const noexcept { rd_kafka_message_destroy(m); }
};
using Message = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

Client make_client(rd_kafka_type_t type, const std::map<std::string, std::string>& props,
                   void (*on_delivery)(rd_kafka_t*, const rd_kafka_message_t*, void*) = nullptr,
                   void* opaque = nullptr) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(err);
    }
  }
  if (on_delivery != nullptr) rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  if (opaque != nullptr) rd_kafka_conf_set_opaque(conf, opaque);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(err);
  }
  return Client(rk);
}

int partition_count(rd_kafka_t* rk, const std::string& topic) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const auto err = rd_kafka_metadata(rk, 0, t, &md, 10000);
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error("metadata for " + topic + " failed");
  const int n = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  if (n <= 0) throw std::runtime_error("topic " + topic + " has no partitions");
  return n;
}

PartitionList all_partitions(const std::string& topic, int partitions, std::int64_t offset) {
  PartitionList list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = offset;
  }
  return list;
}

}  // namespace

Deployment make_deployment(const std::string& bootstrap, const std::string& tag) {
  Deployment d{temp_dir("revtrace-eos-" + tag), unique(tag) + ".", bootstrap, unique("group-" + tag)};
  const auto config = write_config(d, "topics", free_port(), false);
  ChildProcess create({revtrace_binary(), "topics", "create", "--config", config}, {},
                      d.dir + "/topics.log");
  const auto status = create.wait(60s);
  INFO(create.log());
  REQUIRE(status.value_or(-1) == 0);
  return d;
}

void produce_range(const Deployment& d, const Workload& w, std::size_t from, std::size_t to) {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> by_topic;
  for (std::size_t i = from; i < to && i < w.records.size(); ++i) {
    by_topic[d.topic(w.records[i].topic)].emplace_back(w.records[i].key, w.records[i].value);
  }
  for (auto& [topic, records] : by_topic) produce(d.bootstrap, topic, records);
}

// --- metrics ---------------------------------------------------------------------------------

double Metrics::value(const std::string& name) const {
  auto it = series.find(name);
  return it == series.end() ? 0.0 : it->second;
}
std::uint64_t Metrics::records() const {
  return static_cast<std::uint64_t>(value("revtrace_processor_records_total"));
}
std::uint64_t Metrics::replayed() const {
  return static_cast<std::uint64_t>(value("revtrace_processor_replayed_records_total"));
}
std::uint64_t Metrics::committed() const {
  return static_cast<std::uint64_t>(value("revtrace_processor_transactions_total{outcome=\"committed\"}"));
}
std::uint64_t Metrics::aborted() const {
  return static_cast<std::uint64_t>(value("revtrace_processor_transactions_total{outcome=\"aborted\"}"));
}
std::uint64_t Metrics::revenue() const {
  return static_cast<std::uint64_t>(value("revtrace_processor_revenue_records_total"));
}
std::set<int> Metrics::partition_numbers() const {
  std::set<int> out;
  for (const auto& [topic, p] : assigned) out.insert(p);
  return out;
}

Metrics scrape(std::uint16_t port) {
  Metrics m;
  const auto r = http_request(port, "GET", "/metrics");
  if (r.status != 200) return m;
  m.answered = true;
  static const std::regex lag(
      R"re(^revtrace_processor_consumer_lag\{topic="([^"]+)",partition="(\d+)"\}$)re");
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    const std::string name = line.substr(0, space);
    const double value = std::stod(line.substr(space + 1));
    m.series[name] = value;
    std::smatch match;
    if (std::regex_match(name, match, lag)) {
      m.assigned.insert({match[1].str(), std::stoi(match[2].str())});
      m.lag += static_cast<std::int64_t>(value);
    }
  }
  return m;
}

// --- processor instances ---------------------------------------------------------------------

ProcessorInstance::ProcessorInstance(const Deployment& d, const std::string& n, bool static_member)
    : name(n),
      port(free_port()),
      config(write_config(d, n, port, static_member)),
      state_dir(d.dir + "/" + n + "-state"),
      log_file(d.dir + "/" + n + ".log") {}

void ProcessorInstance::start() {
  child = std::make_unique<ChildProcess>(
      std::vector<std::string>{revtrace_binary(), "processor", "--config", config}, env, log_file);
}

void ProcessorInstance::kill9() {
  child->signal(SIGKILL);
  (void)child->wait(30s);
}

int ProcessorInstance::stop() {
  child->signal(SIGTERM);
  return child->wait(60s).value_or(-1);
}

bool ProcessorInstance::running() const { return child && child->running(); }

std::string ProcessorInstance::log() const {
  std::ifstream in(log_file);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool wait_idle(const std::vector<const ProcessorInstance*>& instances,
               std::chrono::milliseconds timeout) {
  int calm = 0;
  return wait_until(timeout, [&] {
    std::int64_t lag = 0;
    std::size_t partitions = 0;
    for (const auto* p : instances) {
      const auto m = p->metrics();
      if (!m.answered) return (calm = 0), false;
      lag += m.lag;
      partitions += m.assigned.size();
    }
    calm = (lag == 0 && partitions == static_cast<std::size_t>(kInputPartitions)) ? calm + 1 : 0;
    return calm >= 3;
  }, 500ms);
}

// --- reading topics --------------------------------------------------------------------------

namespace {

// Waits until no transaction is open on any partition of `topic`: the end a read_committed
// ListOffsets answers (the last stable offset) equals the one a read_uncommitted one answers (the
// high watermark). A producer's commit returns once the broker has logged the decision, before the
// commit markers are in the partitions; until they are, a read_committed reader stops short of that
// transaction's records. The tests read after every producer stopped, so a transaction still open
// after the deadline is one that was left hanging: an error.
void wait_transactions_settled(const std::string& bootstrap, const std::string& topic) {
  auto stable = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                                {"group.id", unique("test-stable")},
                                                {"isolation.level", "read_committed"}});
  auto written = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                                 {"group.id", unique("test-written")},
                                                 {"isolation.level", "read_uncommitted"}});
  const int partitions = partition_count(stable.get(), topic);
  std::string open;
  const bool settled = wait_until(30s, [&] {
    open.clear();
    for (int p = 0; p < partitions; ++p) {
      std::int64_t low = 0, last_stable = -1, high = -1;
      const auto a = rd_kafka_query_watermark_offsets(stable.get(), topic.c_str(), p, &low,
                                                      &last_stable, 10000);
      const auto b = rd_kafka_query_watermark_offsets(written.get(), topic.c_str(), p, &low, &high,
                                                      10000);
      if (a != RD_KAFKA_RESP_ERR_NO_ERROR || b != RD_KAFKA_RESP_ERR_NO_ERROR || last_stable != high) {
        open += " partition " + std::to_string(p) + ": last stable offset " +
                std::to_string(last_stable) + ", high watermark " + std::to_string(high) + ";";
      }
    }
    return open.empty();
  }, 50ms);
  if (!settled) throw std::runtime_error(topic + " still has an open transaction after 30 s:" + open);
}

}  // namespace

std::vector<LogRecord> read_log(const std::string& bootstrap, const std::string& topic,
                                Isolation isolation) {
  if (isolation == Isolation::read_committed) wait_transactions_settled(bootstrap, topic);
  auto c = make_client(
      RD_KAFKA_CONSUMER,
      {{"bootstrap.servers", bootstrap},
       {"group.id", unique("test-reader")},
       {"isolation.level", isolation == Isolation::read_committed ? "read_committed" : "read_uncommitted"},
       {"enable.auto.commit", "false"},
       {"enable.partition.eof", "true"}});
  const int partitions = partition_count(c.get(), topic);
  auto list = all_partitions(topic, partitions, RD_KAFKA_OFFSET_BEGINNING);
  rd_kafka_assign(c.get(), list.get());
  std::vector<LogRecord> out;
  std::set<int> ended;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (ended.size() < static_cast<std::size_t>(partitions)) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("timed out reading " + topic);
    }
    Message m(rd_kafka_consumer_poll(c.get(), 200));
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ended.insert(m->partition);
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      LogRecord r;
      if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr) r.value.emplace(static_cast<const char*>(m->payload), m->len);
      r.partition = m->partition;
      r.offset = m->offset;
      r.timestamp = rd_kafka_message_timestamp(m.get(), nullptr);
      out.push_back(std::move(r));
    } else {
      throw std::runtime_error("reading " + topic + ": " + rd_kafka_message_errstr(m.get()));
    }
  }
  rd_kafka_consumer_close(c.get());
  return out;
}

// --- attributed-revenue histories ------------------------------------------------------------

RevenueHistory analyse_revenue(const std::vector<LogRecord>& records) {
  RevenueHistory h;
  simdjson::dom::parser parser;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> previous;
  std::set<std::tuple<std::string, std::int64_t, std::int64_t>> seen;
  for (const auto& r : records) {
    ++h.records;
    if (!r.value) {  // a tombstone retires a payment key merged into another
      h.latest.erase(r.key);
      previous.erase(r.key);
      continue;
    }
    simdjson::dom::element rec = parser.parse(*r.value);
    const std::int64_t generation = rec["generation"].get_int64();
    const std::int64_t revision = rec["revision"].get_int64();
    const std::string where = r.key + " g" + std::to_string(generation) + " r" +
                              std::to_string(revision) + " at " + std::to_string(r.partition) +
                              "@" + std::to_string(r.offset);
    if (!seen.insert({r.key, generation, revision}).second) h.repeated.push_back(where);
    auto it = previous.find(r.key);
    if (it != previous.end() && std::make_pair(generation, revision) <= it->second) {
      h.not_growing.push_back(where + " after g" + std::to_string(it->second.first) + " r" +
                              std::to_string(it->second.second));
    }
    previous[r.key] = {generation, revision};
    h.latest[r.key] = *r.value;
  }
  return h;
}

void check_same_latest(const RevenueHistory& reference, const RevenueHistory& run) {
  for (const auto& d : run.repeated) UNSCOPED_INFO("repeated " << d);
  CHECK(run.repeated.empty());
  for (const auto& d : run.not_growing) UNSCOPED_INFO("revision not growing: " << d);
  CHECK(run.not_growing.empty());
  std::vector<std::string> missing;
  std::vector<std::string> extra;
  std::vector<std::string> differing;
  for (const auto& [key, value] : reference.latest) {
    auto it = run.latest.find(key);
    if (it == run.latest.end()) {
      missing.push_back(key);
    } else if (it->second != value) {
      differing.push_back(key + "\n  reference: " + value + "\n  run:       " + it->second);
    }
  }
  for (const auto& [key, value] : run.latest) {
    if (!reference.latest.count(key)) extra.push_back(key + ": " + value);
  }
  for (std::size_t i = 0; i < missing.size() && i < 5; ++i) UNSCOPED_INFO("missing " << missing[i]);
  for (std::size_t i = 0; i < extra.size() && i < 5; ++i) UNSCOPED_INFO("extra " << extra[i]);
  for (std::size_t i = 0; i < differing.size() && i < 5; ++i) UNSCOPED_INFO("differs " << differing[i]);
  CHECK(missing.empty());
  CHECK(extra.empty());
  CHECK(differing.empty());
  CHECK(run.latest.size() == reference.latest.size());
}

// --- the input feeder ------------------------------------------------------------------------

struct InputFeeder::Producer {
  Client rk;
};

namespace {
void count_failed_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    static_cast<std::atomic<std::size_t>*>(opaque)->fetch_add(1);
  }
}
}  // namespace

InputFeeder::InputFeeder(const Deployment& d, const Workload& w, std::size_t from, std::size_t to,
                         std::size_t slice, std::chrono::milliseconds interval, bool paused)
    : d_(d),
      w_(w),
      from_(from),
      to_(std::min(to, w.records.size())),
      slice_(slice),
      interval_(interval),
      next_(from),
      paused_(paused),
      producer_(std::make_unique<Producer>()) {
  // The partitioner of tests/support's produce(): the same site lands in the same partition.
  producer_->rk = make_client(RD_KAFKA_PRODUCER,
                              {{"bootstrap.servers", d.bootstrap},
                               {"partitioner", "murmur2_random"},
                               {"enable.idempotence", "true"},
                               {"linger.ms", "5"},
                               {"message.timeout.ms", "240000"}},
                              &count_failed_delivery, &failures_);
  thread_ = std::thread([this] { run(); });
}

InputFeeder::~InputFeeder() {
  {
    std::lock_guard lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  thread_.join();
  rd_kafka_flush(producer_->rk.get(), 10000);
}

void InputFeeder::pause(bool paused) {
  {
    std::lock_guard lock(mutex_);
    paused_.store(paused);
  }
  wake_.notify_all();
}

void InputFeeder::run() {
  while (!stop_.load()) {
    if (!paused_.load() && next_.load() < to_) {
      const std::size_t end = std::min(next_.load() + slice_, to_);
      for (std::size_t i = next_.load(); i < end; ++i) {
        const auto& r = w_.records[i];
        const std::string topic = d_.topic(r.topic);
        for (;;) {
          const auto err = rd_kafka_producev(
              producer_->rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
              RD_KAFKA_V_KEY(r.key.data(), r.key.size()),
              RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
          if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
          if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            failures_.fetch_add(1);
            break;
          }
          rd_kafka_poll(producer_->rk.get(), 10);
        }
      }
      next_.store(end);
    }
    rd_kafka_poll(producer_->rk.get(), 0);
    // The pace of the traffic (not a wait for a condition); pause() and the destructor wake it.
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, interval_, [this] { return stop_.load(); });
  }
}

bool InputFeeder::flush(std::chrono::milliseconds timeout) {
  return wait_until(timeout, [&] {
    return done() && rd_kafka_flush(producer_->rk.get(), 100) == RD_KAFKA_RESP_ERR_NO_ERROR;
  });
}

// --- the output tripwire ---------------------------------------------------------------------

struct OutputTripwire::Consumer {
  Client rk;
};

OutputTripwire::OutputTripwire(const std::string& bootstrap, const std::string& topic)
    : consumer_(std::make_unique<Consumer>()) {
  consumer_->rk = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                                  {"group.id", unique("test-tripwire")},
                                                  {"isolation.level", "read_uncommitted"},
                                                  {"enable.auto.commit", "false"},
                                                  {"fetch.wait.max.ms", "100"}});
  auto list = all_partitions(topic, partition_count(consumer_->rk.get(), topic), RD_KAFKA_OFFSET_END);
  rd_kafka_assign(consumer_->rk.get(), list.get());
  thread_ = std::thread([this] { run(); });
}

OutputTripwire::~OutputTripwire() {
  stop_.store(true);
  thread_.join();
  rd_kafka_consumer_close(consumer_->rk.get());
}

void OutputTripwire::arm(int pid) { pid_.store(pid); }
void OutputTripwire::disarm() { pid_.store(0); }

void OutputTripwire::run() {
  while (!stop_.load()) {
    Message m(rd_kafka_consumer_poll(consumer_->rk.get(), 20));
    if (!m || m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    seen_.fetch_add(1);
    const int pid = pid_.exchange(0);
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      fired_.fetch_add(1);
    }
  }
}

// --- logs and encodings ----------------------------------------------------------------------

std::set<int> rebuilt_partitions(const std::string& log) {
  static const std::regex line(
      R"re(\[(\d+)\]: rebuilding state from offset \d+ to \d+ with output suppressed)re");
  std::set<int> out;
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    out.insert(std::stoi((*it)[1].str()));
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t n = static_cast<unsigned char>(bytes[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t n = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace revtrace::testing::processor_harness
