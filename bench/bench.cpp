// revtrace_bench: the measuring parts of bench/run.sh. Each subcommand does one measurement on a
// real broker and prints one JSON object on stdout (progress on stderr):
//   load     generate the workload and produce it to the input topics as fast as the broker takes it
//   consume  the raw rate: a bare read_committed librdkafka consumer over the same partitions
//   wait     watch a processor's /metrics until it has processed N records; its RSS from /proc
//   e2e      webhook 200 → attributed-revenue record visible (read_committed), under pageview load
//   compact  flush and compact a RocksDB directory (before measuring its size)
//   engine   the processor's per-record work without Kafka (bench/engine_replay.hpp)
#include <librdkafka/rdkafka.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/engine_replay.hpp"
#include "bench/workload_gen.hpp"
#include "common/topics.hpp"
#include "processor/state_store.hpp"
#include "tests/support/test_support.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using revtrace::bench::Record;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string topic_name(const std::string& prefix, int i) {
  return prefix + std::string(revtrace::common::topics::kInputTopics[static_cast<std::size_t>(i)]);
}

struct KafkaHandle {
  rd_kafka_t* rk = nullptr;
  ~KafkaHandle() {
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};

rd_kafka_t* make_client(rd_kafka_type_t type, const std::map<std::string, std::string>& props) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      throw std::runtime_error("kafka property " + k + ": " + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) throw std::runtime_error(std::string("kafka client: ") + err);
  return rk;
}

// --- load --------------------------------------------------------------------------------------

int run_load(const std::string& bootstrap, const std::string& prefix,
             revtrace::bench::WorkloadOptions options, std::uint64_t max_records) {
  KafkaHandle p;
  // Same partitioner as the gateway (murmur2 on the site id): co-partitioned input topics.
  p.rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap},
                                         {"enable.idempotence", "true"},
                                         {"acks", "all"},
                                         {"partitioner", "murmur2_random"},
                                         {"compression.type", "lz4"},
                                         {"linger.ms", "20"},
                                         {"batch.size", "1000000"},
                                         {"queue.buffering.max.messages", "1000000"},
                                         {"queue.buffering.max.kbytes", "1048576"}});
  rd_kafka_topic_t* topics[3];
  for (int i = 0; i < 3; ++i) topics[i] = rd_kafka_topic_new(p.rk, topic_name(prefix, i).c_str(), nullptr);
  revtrace::bench::WorkloadStats stats;
  const auto start = Clock::now();
  auto last = start;
  std::uint64_t produced = 0;
  revtrace::bench::generate(options, [&](std::vector<Record>& chunk) {
    for (auto& r : chunk) {
      while (rd_kafka_produce(topics[r.topic], RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                              r.value.data(), r.value.size(), r.key.data(), r.key.size(),
                              nullptr) != 0) {
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(rd_kafka_last_error()));
        }
        rd_kafka_poll(p.rk, 10);
      }
      ++produced;
    }
    rd_kafka_poll(p.rk, 0);
    if (Clock::now() - last > 5s) {
      last = Clock::now();
      std::cerr << "load: " << produced << " records, " << stats.visitors << " visitors, "
                << static_cast<std::uint64_t>(produced / seconds_since(start)) << " records/s\n";
    }
    return max_records == 0 || produced < max_records;
  }, stats);
  if (rd_kafka_flush(p.rk, 300000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::cerr << "load: flush timed out\n";
    return 1;
  }
  for (auto* t : topics) rd_kafka_topic_destroy(t);
  const double secs = seconds_since(start);
  std::cout << R"({"records":)" << stats.records << R"(,"bytes":)" << stats.bytes
            << R"(,"visitors":)" << stats.visitors << R"(,"next_visitor":)"
            << options.first_visitor + stats.visitors << R"(,"pageviews":)" << stats.pageviews
            << R"(,"identifies":)" << stats.identifies << R"(,"redirects":)" << stats.redirects
            << R"(,"payers":)" << stats.payers << R"(,"subscriptions":)" << stats.subscriptions
            << R"(,"renewals":)" << stats.renewals << R"(,"refunds":)" << stats.refunds
            << R"(,"duplicate_deliveries":)" << stats.duplicates << R"(,"stripe_events":)"
            << stats.stripe_events << R"(,"seconds":)" << secs << "}\n";
  return 0;
}

// --- consume -----------------------------------------------------------------------------------

int run_consume(const std::string& bootstrap, const std::string& prefix) {
  KafkaHandle c;
  c.rk = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                         {"group.id", "revtrace-bench-raw"},
                                         {"isolation.level", "read_committed"},
                                         {"enable.auto.commit", "false"},
                                         {"enable.partition.eof", "true"}});
  rd_kafka_poll_set_consumer(c.rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(32);
  std::uint64_t expected_partitions = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string name = topic_name(prefix, i);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* t = rd_kafka_topic_new(c.rk, name.c_str(), nullptr);
    if (rd_kafka_metadata(c.rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
      std::cerr << "consume: no metadata for " << name << "\n";
      return 1;
    }
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      rd_kafka_topic_partition_list_add(list, name.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      ++expected_partitions;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
  }
  rd_kafka_assign(c.rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  const auto start = Clock::now();
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t checksum = 0;
  std::map<std::pair<std::string, int>, bool> at_end;
  while (at_end.size() < expected_partitions) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c.rk, 1000);
    if (m == nullptr) {
      if (seconds_since(start) > 1800) break;
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end[{rd_kafka_topic_name(m->rkt), m->partition}] = true;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++records;
      bytes += m->len;
      // Touch the payload, as any real consumer does.
      if (m->len > 0) checksum += static_cast<const unsigned char*>(m->payload)[m->len - 1];
    }
    rd_kafka_message_destroy(m);
  }
  const double secs = seconds_since(start);
  rd_kafka_consumer_close(c.rk);
  std::cout << R"({"records":)" << records << R"(,"bytes":)" << bytes << R"(,"seconds":)" << secs
            << R"(,"records_per_s":)" << records / std::max(secs, 1e-9) << R"(,"checksum":)"
            << checksum << "}\n";
  return 0;
}

// --- wait --------------------------------------------------------------------------------------

std::map<std::string, std::uint64_t> read_status_kb(int pid) {
  std::map<std::string, std::uint64_t> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"VmHWM", "VmRSS"}) {
      if (line.starts_with(key)) out[key] = std::stoull(line.substr(line.find(':') + 1));
    }
  }
  return out;
}

// CPU seconds (user + system) the process's threads have used, by thread name with a trailing
// number dropped ("rdk:broker1" -> "rdk:broker"): the processor's own threads ("revtrace"),
// librdkafka's ("rdk:..."), RocksDB's ("rocksdb:..."). Threads that already exited are not counted.
std::map<std::string, double> thread_cpu_s(int pid) {
  std::map<std::string, double> out;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::error_code ec;
  const std::filesystem::path tasks("/proc/" + std::to_string(pid) + "/task");
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(task.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    const auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    std::string name = line.substr(open + 1, close - open - 1);
    while (!name.empty() && name.back() >= '0' && name.back() <= '9') name.pop_back();
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {  // field 3 is the state
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    out[name] += (utime + stime) / tick;
  }
  return out;
}

// A zombie (exited, not reaped yet) counts as gone.
bool process_gone(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("State:")) return line.find('Z') != std::string::npos;
  }
  return true;
}

double metric_sum(const std::string& text, const std::string& name) {
  double sum = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with(name)) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

int run_wait(std::uint16_t port, std::uint64_t target, int pid, double timeout_s, bool lag_zero) {
  const auto start = Clock::now();
  double first = -1;
  std::uint64_t hwm = 0;
  for (;;) {
    const auto res = revtrace::testing::http_request(port, "GET", "/metrics");
    if (pid > 0) hwm = std::max(hwm, read_status_kb(pid)["VmHWM"]);
    if (res.status == 200) {
      const double n = metric_sum(res.body, "revtrace_processor_records_total") +
                       metric_sum(res.body, "revtrace_processor_replayed_records_total");
      if (n > 0 && first < 0) first = seconds_since(start);
      const bool assigned = res.body.find("revtrace_processor_consumer_lag{") != std::string::npos;
      const bool caught_up =
          !lag_zero || (assigned && metric_sum(res.body, "revtrace_processor_consumer_lag") == 0);
      if (n >= static_cast<double>(target) && caught_up) {
        const double secs = seconds_since(start);
        const double lag = metric_sum(res.body, "revtrace_processor_consumer_lag");
        const auto st = pid > 0 ? read_status_kb(pid) : std::map<std::string, std::uint64_t>{};
        std::cout << R"({"records":)" << static_cast<std::uint64_t>(n) << R"(,"seconds":)" << secs
                  << R"(,"first_record_after_s":)" << first << R"(,"records_per_s":)"
                  << n / std::max(secs, 1e-9) << R"(,"steady_records_per_s":)"
                  << n / std::max(secs - std::max(first, 0.0), 1e-9) << R"(,"lag_at_end":)" << lag
                  << R"(,"vm_hwm_kb":)" << (st.count("VmHWM") ? st.at("VmHWM") : hwm)
                  << R"(,"vm_rss_kb":)" << (st.count("VmRSS") ? st.at("VmRSS") : 0)
                  << R"(,"revenue_records":)"
                  << static_cast<std::uint64_t>(metric_sum(res.body, "revtrace_processor_revenue_records_total"));
        if (pid > 0) {
          std::cout << R"(,"cpu_s":{)";
          const char* comma = "";
          for (const auto& [name, secs] : thread_cpu_s(pid)) {
            std::cout << comma << '"' << name << R"(":)" << secs;
            comma = ",";
          }
          std::cout << "}";
        }
        std::cout << R"(,"batch_phase_s":{)";
        const char* sep = "";
        for (const char* phase : {"poll", "process", "commit", "state"}) {
          const std::string series = std::string("revtrace_processor_batch_phase_microseconds_total{phase=\"") +
                                     phase + "\"}";
          std::cout << sep << '"' << phase << R"(":)" << metric_sum(res.body, series) / 1e6;
          sep = ",";
        }
        std::cout << "}}\n";
        return 0;
      }
    }
    if (pid > 0 && (::kill(pid, 0) != 0 || process_gone(pid))) {
      // The process finished (a replay exits when done): its last sampled high-water mark.
      std::cout << R"({"exited":true,"seconds":)" << seconds_since(start) << R"(,"vm_hwm_kb":)"
                << hwm << "}\n";
      return 0;
    }
    if (seconds_since(start) > timeout_s) {
      std::cerr << "wait: timed out after " << timeout_s << " s\n";
      return 1;
    }
    std::this_thread::sleep_for(100ms);
  }
}

// --- e2e ---------------------------------------------------------------------------------------

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::min<double>(v.size() - 1, q * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

int run_e2e(const std::string& bootstrap, const std::string& prefix, std::uint16_t gateway_port,
            const std::string& site, const std::string& secret, int background_rate, int webhooks,
            int webhook_rate, int background_sites, const std::string& latencies_file) {
  std::atomic<bool> stop{false};
  const std::string revenue_topic =
      prefix + std::string(revtrace::common::topics::kAttributedRevenue);

  // The reader: a read_committed consumer at the end of the revenue topic, polling tightly.
  KafkaHandle c;
  c.rk = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                         {"group.id", "revtrace-bench-e2e"},
                                         {"isolation.level", "read_committed"},
                                         {"enable.auto.commit", "false"},
                                         {"fetch.wait.max.ms", "5"},
                                         {"fetch.error.backoff.ms", "5"}});
  rd_kafka_poll_set_consumer(c.rk);
  {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* t = rd_kafka_topic_new(c.rk, revenue_topic.c_str(), nullptr);
    if (rd_kafka_metadata(c.rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) return 1;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(16);
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      rd_kafka_topic_partition_list_add(list, revenue_topic.c_str(), p)->offset = RD_KAFKA_OFFSET_END;
    }
    rd_kafka_assign(c.rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
  }
  std::mutex mu;
  std::map<std::string, Clock::time_point> acked;  // checkout session id → 200 received
  std::map<std::string, Clock::time_point> seen;   // checkout session id → first revenue record
  std::thread reader([&] {
    while (!stop.load()) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(c.rk, 20);
      if (m == nullptr) continue;
      const auto now = Clock::now();
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->payload != nullptr) {
        const std::string_view v(static_cast<const char*>(m->payload), m->len);
        const auto at = v.find(R"("checkout_session":"cs_e2e_)");
        if (at != std::string_view::npos) {
          const auto from = at + 20;
          const auto id = std::string(v.substr(from, v.find('"', from) - from));
          std::lock_guard lock(mu);
          seen.try_emplace(id, now);
        }
      }
      rd_kafka_message_destroy(m);
    }
  });

  // The background load: pageviews of many visitors at a steady rate, straight into the topic.
  KafkaHandle p;
  p.rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap},
                                         {"enable.idempotence", "true"},
                                         {"partitioner", "murmur2_random"},
                                         {"compression.type", "lz4"},
                                         {"linger.ms", "5"}});
  const std::string web_topic = topic_name(prefix, 0);
  std::atomic<std::uint64_t> background{0};
  const auto epoch_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()).count();
  };
  auto send_pageview = [&](const std::string& s, const std::string& visitor, const std::string& id) {
    const auto v = revtrace::bench::pageview_record(s, visitor, id, epoch_ms(),
                                                    "https://" + s + ".example/?utm_source=newsletter&utm_medium=email",
                                                    "");
    while (rd_kafka_producev(p.rk, RD_KAFKA_V_TOPIC(web_topic.c_str()),
                             RD_KAFKA_V_KEY(const_cast<char*>(s.data()), s.size()),
                             RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(p.rk, 5);
    }
  };
  // The webhook payers' visits come first, so their payments have a touch to be attributed to.
  for (int i = 0; i < webhooks; ++i) {
    send_pageview(site, "e2e-visitor-" + std::to_string(i), "e2e-pv-" + std::to_string(i));
  }
  rd_kafka_flush(p.rk, 30000);
  std::thread loader([&] {
    const auto start = Clock::now();
    std::mt19937_64 rng(7);
    std::uint64_t n = 0;
    while (!stop.load()) {
      const double due = seconds_since(start) * background_rate;
      for (; static_cast<double>(n) < due; ++n) {
        const std::string s = "bench-bg-" + std::to_string(rng() % static_cast<std::uint64_t>(background_sites));
        send_pageview(s, "bg-" + std::to_string(rng() % 200000), "bg-" + std::to_string(n));
      }
      rd_kafka_poll(p.rk, 0);
      std::this_thread::sleep_for(2ms);
    }
    background = n;
  });

  std::this_thread::sleep_for(3s);  // the background load reaches its steady state
  const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
  const auto load_start = Clock::now();
  int failed = 0;
  for (int i = 0; i < webhooks; ++i) {
    const auto due = load_start + std::chrono::microseconds(1000000LL * i / webhook_rate);
    std::this_thread::sleep_until(due);
    const std::string cs = "cs_e2e_" + std::to_string(i);
    const std::string payload = revtrace::bench::checkout_webhook_payload(
        "evt_e2e_" + std::to_string(i), cs, "e2e-visitor-" + std::to_string(i), 1000 + i, created);
    const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
    const auto res = revtrace::testing::http_request(
        gateway_port, "POST", "/v1/webhooks/stripe/" + site, payload,
        {{"Content-Type", "application/json"},
         {"Stripe-Signature", revtrace::testing::stripe_signature(payload, secret, now_s)}});
    const auto t = Clock::now();
    if (res.status != 200) {
      ++failed;
      std::cerr << "e2e: webhook " << i << " answered " << res.status << ": " << res.body << "\n";
      continue;
    }
    std::lock_guard lock(mu);
    acked.emplace(cs, t);
  }
  // Every acknowledged webhook's record must appear; wait for them with a deadline.
  const auto deadline = Clock::now() + 60s;
  for (;;) {
    {
      std::lock_guard lock(mu);
      std::size_t done = 0;
      for (const auto& [id, t] : acked) done += seen.count(id);
      if (done == acked.size()) break;
    }
    if (Clock::now() > deadline) break;
    std::this_thread::sleep_for(20ms);
  }
  const double load_secs = seconds_since(load_start);
  stop = true;
  loader.join();
  reader.join();
  rd_kafka_flush(p.rk, 10000);
  rd_kafka_consumer_close(c.rk);
  std::vector<double> ms;
  std::size_t missing = 0;
  std::ofstream dump;
  if (!latencies_file.empty()) {
    dump.open(latencies_file);
    dump << "acked_at_s,latency_ms,checkout_session\n";
  }
  for (const auto& [id, t] : acked) {
    auto it = seen.find(id);
    if (it == seen.end()) {
      ++missing;
      continue;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(it->second - t).count());
    if (dump.is_open()) {
      dump << std::chrono::duration<double>(t - load_start).count() << ',' << ms.back() << ',' << id
           << '\n';
    }
  }
  const double bg_rate = static_cast<double>(background.load()) / (load_secs + 3.0);
  std::cout << R"({"webhooks":)" << webhooks << R"(,"acknowledged":)" << acked.size()
            << R"(,"failed":)" << failed << R"(,"missing":)" << missing << R"(,"p50_ms":)"
            << percentile(ms, 0.5) << R"(,"p90_ms":)" << percentile(ms, 0.9) << R"(,"p99_ms":)"
            << percentile(ms, 0.99) << R"(,"max_ms":)" << percentile(ms, 1.0)
            << R"(,"background_events_per_s":)" << bg_rate << "}\n";
  return missing == 0 && failed == 0 ? 0 : 1;
}

// --- compact -----------------------------------------------------------------------------------

// Opens the directory with the processor's own RocksDB options (compression per level, table
// format), so the size measured is the size the processor keeps, then flushes and compacts it
// all into the bottommost level.
int run_compact(const std::string& dir) {
  std::unique_ptr<revtrace::processor::RocksState> state;
  try {
    state = std::make_unique<revtrace::processor::RocksState>(dir);
  } catch (const std::exception& e) {
    std::cerr << "compact: " << e.what() << "\n";
    return 1;
  }
  rocksdb::DB* db = &state->db();
  auto status = db->Flush(rocksdb::FlushOptions());
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  if (status.ok()) status = db->CompactRange(compact, nullptr, nullptr);
  if (!status.ok()) {
    std::cerr << "compact: " << status.ToString() << "\n";
    return 1;
  }
  std::uint64_t keys = 0;
  std::uint64_t sst = 0;
  db->GetIntProperty("rocksdb.estimate-num-keys", &keys);
  db->GetIntProperty("rocksdb.total-sst-files-size", &sst);
  status = db->Close();
  std::cout << R"({"estimated_keys":)" << keys << R"(,"sst_bytes":)" << sst << "}\n";
  return status.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"revtrace benchmark parts (run bench/run.sh)"};
  app.require_subcommand(1);
  std::string bootstrap;
  std::string prefix;
  revtrace::bench::WorkloadOptions w;
  std::uint64_t max_records = 0;
  auto* load = app.add_subcommand("load", "Generate the workload into the input topics");
  auto* consume = app.add_subcommand("consume", "Raw read_committed consumption rate");
  for (auto* cmd : {load, consume}) {
    cmd->add_option("--bootstrap", bootstrap)->required();
    cmd->add_option("--prefix", prefix, "kafka.topic_prefix");
  }
  load->add_option("--visitors", w.visitors, "Visitors to generate");
  load->add_option("--first-visitor", w.first_visitor, "Index of the first visitor (appending)");
  load->add_option("--sites", w.sites);
  load->add_option("--seed", w.seed);
  load->add_option("--payers", w.payer_fraction, "Share of visitors who pay");
  load->add_option("--max-records", max_records, "Stop after about this many records (0 = none)");

  auto* dump = app.add_subcommand("dump", "Print the workload as lines of <topic index> <key> <value>");
  dump->add_option("--visitors", w.visitors);
  dump->add_option("--seed", w.seed);

  auto* wait = app.add_subcommand("wait", "Wait for a processor to process N records");
  std::uint16_t port = 0;
  std::uint64_t target = 0;
  int pid = 0;
  double timeout = 3600;
  wait->add_option("--metrics-port", port)->required();
  wait->add_option("--records", target)->required();
  wait->add_option("--pid", pid, "Processor pid (RSS)");
  wait->add_option("--timeout", timeout);
  bool lag_zero = false;
  wait->add_flag("--lag-zero", lag_zero, "Also wait until the consumer lag is 0");

  auto* e2e = app.add_subcommand("e2e", "End-to-end webhook latency under pageview load");
  std::string site;
  std::string secret;
  int rate = 2000;
  int webhooks = 300;
  int webhook_rate = 20;
  int bg_sites = 50;
  e2e->add_option("--bootstrap", bootstrap)->required();
  e2e->add_option("--prefix", prefix);
  e2e->add_option("--gateway-port", port)->required();
  e2e->add_option("--site", site)->required();
  e2e->add_option("--secret", secret)->required();
  e2e->add_option("--rate", rate, "Background pageviews per second");
  e2e->add_option("--webhooks", webhooks);
  e2e->add_option("--webhook-rate", webhook_rate, "Webhooks per second");
  e2e->add_option("--background-sites", bg_sites);
  std::string latencies_file;
  e2e->add_option("--latencies", latencies_file, "Write each webhook's latency (CSV) here");

  auto* compact = app.add_subcommand("compact", "Flush and compact a RocksDB directory");
  std::string dir;
  compact->add_option("--dir", dir)->required();

  auto* engine = app.add_subcommand("engine", "Records through the engine and state store, no Kafka");
  revtrace::bench::EngineReplayOptions engine_run;
  engine->add_option("--visitors", w.visitors);
  engine->add_option("--seed", w.seed);
  engine->add_option("--dir", engine_run.state_dir, "State directory (removed first)")->required();
  engine->add_option("--partitions", engine_run.partitions);
  engine->add_option("--batch", engine_run.batch_records, "Records per batch (commit)");
  engine->add_flag("--progress", engine_run.progress);

  CLI11_PARSE(app, argc, argv);
  try {
    if (load->parsed()) {
      if (max_records > 0 && w.visitors == 10000) w.visitors = max_records;  // records bound it
      return run_load(bootstrap, prefix, w, max_records);
    }
    if (consume->parsed()) return run_consume(bootstrap, prefix);
    if (dump->parsed()) {
      revtrace::bench::WorkloadStats stats;
      revtrace::bench::generate(w, [](std::vector<Record>& chunk) {
        for (const auto& r : chunk) std::cout << r.topic << ' ' << r.key << ' ' << r.value << '\n';
        return true;
      }, stats);
      return 0;
    }
    if (wait->parsed()) return run_wait(port, target, pid, timeout, lag_zero);
    if (e2e->parsed()) {
      return run_e2e(bootstrap, prefix, port, site, secret, rate, webhooks, webhook_rate, bg_sites,
                     latencies_file);
    }
    if (compact->parsed()) return run_compact(dir);
    if (engine->parsed()) {
      const auto r = revtrace::bench::run_engine_replay(w, engine_run);
      std::cout << R"({"records":)" << r.records << R"(,"seconds":)" << r.seconds
                << R"(,"records_per_s":)" << r.records / std::max(r.seconds, 1e-9)
                << R"(,"outputs":)" << r.outputs << R"(,"output_bytes":)" << r.output_bytes
                << R"(,"skipped":)" << r.skipped << R"(,"invalid":)" << r.invalid
                << R"(,"state_bytes":)" << r.state_bytes << R"(,"checkpoints":)" << r.checkpoints
                << "}\n";
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "revtrace_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
