#include "processor/processor.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/http.hpp"
#include "common/kafka.hpp"
#include "common/topics.hpp"
#include "processor/dead_letter.hpp"
#include "processor/domain/engine.hpp"
#include "processor/state_store.hpp"

namespace revtrace::processor {

namespace kafka = common::kafka;
namespace topics = common::topics;
using namespace std::chrono_literals;

namespace {

struct ConsumerGroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* m) const noexcept {
    rd_kafka_consumer_group_metadata_destroy(m);
  }
};

domain::SiteSettings settings_of(const common::SiteConfig& site) {
  domain::SiteSettings s;
  s.site_id = site.id;
  s.lookback = site.lookback_days * 24LL * 3600 * 1000;
  s.idle_margin = site.idle_margin_days * 24LL * 3600 * 1000;
  for (const auto& k : site.visitor_id_keys) s.visitor_id_keys.push_back(k);
  for (const auto& k : site.session_id_keys) s.session_id_keys.push_back(k);
  s.rules.own_domains = site.own_domains;
  if (!site.affiliate_params.empty()) s.rules.affiliate_params = site.affiliate_params;
  s.email_hash_key = site.email_hash_key.empty() ? "revtrace-email:" + site.id : site.email_hash_key;
  return s;
}

std::string default_instance_id(const std::string& data_dir) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(std::hash<std::string>{}(data_dir) % 1000000);
}

// A batch (one transaction) ends after transaction_interval_ms or this many records. Live traffic
// fills batches by time; the count only bounds a backlog (a replay, a catch-up), where each
// batch's fixed cost — commit_transaction's round trips, during which no record is processed — is
// paid per batch: 20,000 records replay about 25 % faster than 5,000, and 50,000 halve the
// commits' share again (PERFORMANCE.md); a batch still commits in well under a second.
constexpr std::size_t kMaxBatchRecords = 50000;

// How long a partition number's records wait for its other input topics' first fetch after an
// assignment (see hold_records_until_all_topics_fetched) before they are processed without it.
constexpr auto kFirstFetchWait = std::chrono::seconds(30);

// Event-time alignment (see hold_records_ahead_of_earlier_topics): an earlier topic's partition
// that delivered nothing (no record, no end) for this long no longer holds records back. (A
// partition's records also stop waiting after processor.event_time_max_wait_ms: an earlier topic
// that stays behind, or whose producers' clocks run late, must not hold payments back for good;
// and no more records start waiting once processor.event_time_max_waiting are held, each
// pinning its fetched message set in memory.)
constexpr auto kAlignStall = std::chrono::seconds(10);

}  // namespace

// One partition number's engine, over the state scoped to that partition.
struct PartitionEngine {
  PartitionEngine(StateCache& cache, std::int32_t partition,
                  std::function<const domain::SiteSettings&(std::string_view)> settings)
      : store(cache, partition), engine(store, std::move(settings)) {}
  PartitionStore store;
  domain::AttributionEngine engine;
};

// One processing thread's share of the partition numbers (p % lanes): its own state cache,
// engines and site settings. Lanes share only the producer (thread-safe) and the counters
// (atomic); a partition number — all of one site's state — always belongs to one lane, so the
// results do not depend on the number of lanes.
struct Lane {
  std::unique_ptr<StateCache> cache;
  std::map<std::int32_t, std::unique_ptr<PartitionEngine>> engines;
  std::map<std::string, domain::SiteSettings, std::less<>> sites;
  kafka::Status produce_status;    // the batch's first refused produce (see produce())
  // This batch's records of the lane, in batch order: index in the batch, topic rank.
  std::vector<std::pair<std::size_t, int>> items;
};

// Runs one task per lane: lane 0 on the calling thread, the others on threads of their own that
// live as long as the pool. run() returns when every lane finished and rethrows the first
// exception a lane threw.
class LanePool {
 public:
  explicit LanePool(std::size_t lanes) {
    for (std::size_t i = 1; i < lanes; ++i) {
      threads_.emplace_back([this, i] {
        ::pthread_setname_np(::pthread_self(), ("rt:lane" + std::to_string(i)).c_str());  // top -H
        serve(i);
      });
    }
  }
  ~LanePool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  LanePool(const LanePool&) = delete;
  LanePool& operator=(const LanePool&) = delete;

  void run(const std::function<void(std::size_t)>& task) {
    {
      std::lock_guard lock(mutex_);
      task_ = &task;
      pending_ = threads_.size();
      error_ = nullptr;
      ++round_;
    }
    wake_.notify_all();
    std::exception_ptr mine;
    try {
      task(0);
    } catch (...) {
      mine = std::current_exception();
    }
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    task_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void serve(std::size_t lane) {
    std::uint64_t seen = 0;
    for (;;) {
      const std::function<void(std::size_t)>* task = nullptr;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || round_ != seen; });
        if (stopping_) return;
        seen = round_;
        task = task_;
      }
      std::exception_ptr error;
      try {
        (*task)(lane);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard lock(mutex_);
      if (error && !error_) error_ = error;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(std::size_t)>* task_ = nullptr;
  std::size_t pending_ = 0;
  std::uint64_t round_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

struct Processor::Impl {
  Impl(const common::Config& c, common::metrics::Registry& m)
      : config(c),
        metrics(m),
        records_in(m.counter("revtrace_processor_records_total", "Input records processed.")),
        replayed(m.counter("revtrace_processor_replayed_records_total",
                           "Records re-processed with output suppressed to rebuild state.")),
        revenue_out(m.counter("revtrace_processor_revenue_records_total",
                              "Attributed-revenue records emitted.")),
        dead_letters(m.counter("revtrace_processor_dead_letters_total",
                               "Records sent to the dead-letter topic.")),
        skipped(m.counter("revtrace_processor_skipped_total",
                          "Records skipped (unused Stripe event types, duplicates).")),
        skipped_unused(m.counter("revtrace_processor_skipped_by_cause_total",
                                 "Records skipped, by cause.", "cause=\"unused_type\"")),
        skipped_no_payment(m.counter("revtrace_processor_skipped_by_cause_total",
                                     "Records skipped, by cause.", "cause=\"no_payment\"")),
        skipped_duplicate(m.counter("revtrace_processor_skipped_by_cause_total",
                                    "Records skipped, by cause.", "cause=\"duplicate\"")),
        commits(m.counter("revtrace_processor_transactions_total", "Kafka transactions.",
                          "outcome=\"committed\"")),
        aborts(m.counter("revtrace_processor_transactions_total", "Kafka transactions.",
                         "outcome=\"aborted\"")),
        rebalances(m.counter("revtrace_processor_rebalances_total", "Partition assignments.")),
        forced_revisions(m.counter("revtrace_processor_forced_revisions_total",
                                   "Revisions that could not be the payment's basis size "
                                   "(processor/domain/ENGINE.md, Revisions); expected 0.")),
        expired_visitors(m.counter("revtrace_processor_expired_visitors_total",
                                   "Anonymous visitors expired after lookback + idle margin.")),
        first_fetch_timeouts(m.counter("revtrace_processor_first_fetch_timeouts_total",
                                       "Partition numbers whose records stopped waiting for an "
                                       "input topic's first fetch after an assignment; expected 0.")),
        aligned_holds(m.counter("revtrace_processor_event_time_holds_total",
                                "Times a redirect or Stripe record waited for a batch because an "
                                "earlier input topic had not yet delivered up to its timestamp.")),
        phase_poll(m.counter(kPhaseName, kPhaseHelp, "phase=\"poll\"")),
        phase_process(m.counter(kPhaseName, kPhaseHelp, "phase=\"process\"")),
        phase_commit(m.counter(kPhaseName, kPhaseHelp, "phase=\"commit\"")),
        phase_state(m.counter(kPhaseName, kPhaseHelp, "phase=\"state\"")) {
    const auto lane_count = static_cast<std::size_t>(
        config.processor.threads > 0 ? config.processor.threads
                                     : std::max(1u, std::thread::hardware_concurrency()));
    lanes.resize(lane_count);
    for (auto& lane : lanes) {
      for (const auto& site : config.sites) lane.sites.emplace(site.id, settings_of(site));
    }
    generation_prefix = "{\"generation\":" + std::to_string(config.processor.generation) + ",";
    for (auto t : topics::kInputTopics) input_topics.push_back(topics::name(config.kafka, t));
    revenue_topic = topics::name(config.kafka, topics::kAttributedRevenue);
    dead_letter_topic = topics::name(config.kafka, topics::kDeadLetter);
  }

  static const domain::SiteSettings& site_settings(Lane& lane, std::string_view id) {
    auto it = lane.sites.find(id);
    if (it == lane.sites.end()) {
      common::SiteConfig unknown;
      unknown.id = std::string(id);
      it = lane.sites.emplace(unknown.id, settings_of(unknown)).first;
    }
    return it->second;
  }

  Lane& lane_of(std::int32_t partition) {
    return lanes[static_cast<std::size_t>(partition) % lanes.size()];
  }
  StateCache& cache_for(std::int32_t partition) { return *lane_of(partition).cache; }

  domain::AttributionEngine& engine_for(Lane& lane, std::int32_t partition) {
    auto it = lane.engines.find(partition);
    if (it == lane.engines.end()) {
      it = lane.engines
               .emplace(partition, std::make_unique<PartitionEngine>(
                                       *lane.cache, partition,
                                       [&lane](std::string_view id) -> const domain::SiteSettings& {
                                         return site_settings(lane, id);
                                       }))
               .first;
    }
    return it->second->engine;
  }

  // Every lane's cache checkpointed and on disk.
  void checkpoint_all() {
    for (auto& lane : lanes) lane.cache->checkpoint(true);
  }
  std::uint64_t checkpoints() const {
    std::uint64_t n = 0;
    for (const auto& lane : lanes) n += lane.cache->checkpoints();
    return n;
  }
  // Checkpoints written to disk, ingested as table files or through the WAL.
  std::uint64_t checkpoints_written(bool ingested) const {
    std::uint64_t n = 0;
    for (const auto& lane : lanes) {
      n += ingested ? lane.cache->ingested_checkpoints() : lane.cache->wal_checkpoints();
    }
    return n;
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    static_cast<Impl*>(opaque)->rebalance(rk, err, parts);
  }

  // Assignment: bring each partition number's local state in line with the group's committed
  // offsets before producing anything for it (see processor/RECOVERY.md).
  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    rebalanced = true;
    rebalances.inc();
    eof_pending.clear();
    // The assignment starts over: every partition's first fetch is awaited again.
    delivery.clear();
    held.clear();  // re-fetched from the positions the new assignment sets
    held_since.clear();
    waiting_since.clear();
    delivery_rkt = nullptr;
    delivery_entry = nullptr;
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      spdlog::info("processor: {} partitions revoked", parts->cnt);
      // The next owner rebuilds from the log up to the committed offsets; this instance keeps
      // its state on disk as current as it is in memory, so that getting a partition back only
      // replays the gap (and settle() reads local offsets from one place).
      try {
        checkpoint_all();
      } catch (const std::exception& e) {
        // Behind on disk is safe (catch-up repairs it); the error is the disk's, so stop.
        spdlog::critical("processor: {}", e.what());
        healthy.store(false);
        stopping.store(true);
      }
      std::lock_guard lock(assignment_mutex);
      rd_kafka_assign(rk, nullptr);
      assignment.clear();
      progress.clear();
      unsettled.clear();
      catch_up.clear();
      end_of.clear();
      paused.clear();
      for (auto& lane : lanes) lane.engines.clear();
      return;
    }
    std::string why;
    const bool known = read_committed(rk, parts, 10000, why);
    std::lock_guard lock(assignment_mutex);
    if (!known) {
      // A dead instance's transaction that carried offsets stays open until the broker aborts it
      // (transaction.timeout.ms): until then the group's offsets of its partitions are unstable
      // and cannot be read. Guessing them would re-emit or skip output, so the partitions are
      // held (assigned, paused) and settled from the processing loop once they can be read.
      spdlog::warn("processor: the group's committed offsets cannot be read yet ({}): holding {} "
                   "partitions until they can", why, parts->cnt);
      for (int i = 0; i < parts->cnt; ++i) {
        auto& tp = parts->elems[i];
        const TopicPartition key{tp.topic, tp.partition};
        tp.offset = cache_for(key.partition).offset(key).value_or(0);
        assignment.insert(key);
        progress[key] = tp.offset;
        unsettled.insert(key);
      }
      rd_kafka_assign(rk, parts);
      rd_kafka_pause_partitions(rk, parts);
      return;
    }
    settle(parts);
    rd_kafka_assign(rk, parts);
    // While a partition number is catching up in one topic, hold its other topics back, so live
    // output is only computed on complete state.
    for (auto& [tp, target] : catch_up) pause_group_except_catching_up(tp.partition);
  }

  // Reads the group's committed offsets of `parts` into their offset fields; false (with the
  // reason) when the call or any partition failed.
  static bool read_committed(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* parts,
                             int timeout_ms, std::string& why) {
    if (auto e = rd_kafka_committed(rk, parts, timeout_ms)) {
      why = rd_kafka_err2str(e);
      return false;
    }
    for (int i = 0; i < parts->cnt; ++i) {
      if (parts->elems[i].err) {
        why = rd_kafka_err2str(parts->elems[i].err);
        return false;
      }
    }
    return true;
  }

  // Brings each partition number's local state in line with the committed offsets held in
  // `parts` (see processor/RECOVERY.md) and sets each partition's offset field to where fetching
  // must start. The caller holds assignment_mutex.
  void settle(rd_kafka_topic_partition_list_t* parts) {
    std::map<std::int32_t, std::vector<rd_kafka_topic_partition_t*>> by_partition;
    for (int i = 0; i < parts->cnt; ++i) by_partition[parts->elems[i].partition].push_back(&parts->elems[i]);
    for (auto& [p, tps] : by_partition) {
      bool ahead = false;
      for (auto* tp : tps) {
        const std::int64_t committed = tp->offset >= 0 ? tp->offset : 0;
        const std::int64_t local = cache_for(p).offset({tp->topic, p}).value_or(0);
        if (local > committed) ahead = true;
      }
      if (ahead) {
        spdlog::warn("processor: partition {}: local state is ahead of the group's committed "
                     "offsets (offsets were reset?): dropping it and rebuilding from the log", p);
        cache_for(p).drop_partition(p, input_topics);
      }
      bool behind = false;
      for (auto* tp : tps) {
        const std::int64_t committed = tp->offset >= 0 ? tp->offset : 0;
        const std::int64_t local = cache_for(p).offset({tp->topic, p}).value_or(0);
        if (local < committed) {
          catch_up[{tp->topic, p}] = committed;
          behind = true;
          spdlog::info("processor: {}[{}]: rebuilding state from offset {} to {} with output "
                       "suppressed", tp->topic, p, local, committed);
        }
        tp->offset = local;
        assignment.insert({tp->topic, p});
        progress[{tp->topic, p}] = local;
      }
      if (!behind) {
        spdlog::info("processor: partition {}: state is current", p);
      }
    }
  }

  // Held partitions (see rebalance): once their committed offsets can be read, settle them,
  // move them to where fetching must start, and let them go.
  void settle_held() {
    if (unsettled.empty()) return;
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(unsettled.size())));
    for (const auto& tp : unsettled) {
      rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
    }
    std::string why;
    if (!read_committed(consumer.get(), list.get(), 2000, why)) return;
    {
      std::lock_guard lock(assignment_mutex);
      settle(list.get());
    }
    unsettled.clear();
    if (auto* e = rd_kafka_seek_partitions(consumer.get(), list.get(), 10000)) {
      spdlog::error("processor: positioning held partitions failed: {}", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
    rd_kafka_resume_partitions(consumer.get(), list.get());
    for (auto& [tp, target] : catch_up) pause_group_except_catching_up(tp.partition);
    spdlog::info("processor: committed offsets readable: {} held partitions settled", list->cnt);
  }

  void pause_group_except_catching_up(std::int32_t partition) {
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(3));
    for (const auto& t : input_topics) {
      TopicPartition tp{t, partition};
      if (catch_up.count(tp) == 0 && assignment.count(tp) && paused.insert(tp).second) {
        rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), partition);
      }
    }
    if (list->cnt > 0) rd_kafka_pause_partitions(consumer.get(), list.get());
  }

  // Partitions whose position reached their catch-up target go live; a partition number whose
  // topics have all caught up resumes. The position (not the last record) counts: transaction
  // markers occupy offsets too; a partition that ends in a marker is finished by its EOF event.
  void finish_catch_up() {
    if (!catch_up.empty()) {
      kafka::PartitionListPtr list(
          rd_kafka_topic_partition_list_new(static_cast<int>(catch_up.size())));
      for (const auto& [tp, target] : catch_up) {
        rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
      }
      rd_kafka_position(consumer.get(), list.get());
      for (int i = 0; i < list->cnt; ++i) {
        const auto& e = list->elems[i];
        const TopicPartition tp{e.topic, e.partition};
        auto eof = end_of.find(tp);
        const std::int64_t reached =
            std::max<std::int64_t>(e.offset, eof == end_of.end() ? -1 : eof->second);
        auto it = catch_up.find(tp);
        if (it != catch_up.end() && reached >= it->second) catch_up.erase(it);
      }
    }
    std::set<std::int32_t> ready;
    for (const auto& tp : paused) {
      if (!group_catching_up(tp.partition)) ready.insert(tp.partition);
    }
    for (auto p : ready) {
      kafka::PartitionListPtr resume(rd_kafka_topic_partition_list_new(3));
      for (auto it = paused.begin(); it != paused.end();) {
        if (it->partition == p) {
          rd_kafka_topic_partition_list_add(resume.get(), it->topic.c_str(), p);
          it = paused.erase(it);
        } else {
          ++it;
        }
      }
      rd_kafka_resume_partitions(consumer.get(), resume.get());
      spdlog::info("processor: partition {}: state rebuilt, processing live", p);
    }
  }

  void open() {
    state = std::make_unique<RocksState>(config.processor.data_dir);
    // State built under other rules (another processor.generation, e.g. before a `revtrace
    // replay` on another host) must not be continued under these: it is dropped, and every
    // partition is rebuilt from the log on assignment (RECOVERY.md, "Rebuild everything").
    const std::string generation = std::to_string(config.processor.generation);
    if (const auto built = state->meta("generation"); built && *built != generation) {
      spdlog::warn("processor: local state was built by generation {}, this is generation {}: "
                   "dropping it; partitions are rebuilt from the log", *built, generation);
      state->erase_all();
    }
    state->set_meta("generation", generation);
    // The lanes share one cache budget (a single site keeps one lane busy and the other idle);
    // each checkpoints its own partitions.
    StateCacheOptions cache_options;
    if (lanes.size() > 1) cache_options.shared_bytes = std::make_shared<std::atomic<std::size_t>>(0);
    cache_options.checkpoint_dirty_bytes /= lanes.size();
    cache_options.checkpoint_ingest_bytes =
        static_cast<std::size_t>(config.processor.checkpoint_ingest_bytes) / lanes.size();
    for (auto& lane : lanes) lane.cache = std::make_unique<StateCache>(*state, cache_options);
    pool = std::make_unique<LanePool>(lanes.size());
    auto conf = kafka::make_conf(config.kafka, {{"group.id", config.processor.group_id},
                                                {"isolation.level", "read_committed"},
                                                {"enable.auto.commit", "false"},
                                                {"enable.auto.offset.store", "false"},
                                                {"auto.offset.reset", "earliest"},
                                                {"enable.partition.eof", "true"},
                                                // range assigns partition p of every input topic
                                                // to the same member: co-partitioning.
                                                {"partition.assignment.strategy", "range"}});
    rd_kafka_conf_set_rebalance_cb(conf.get(), &Impl::on_rebalance);
    rd_kafka_conf_set_opaque(conf.get(), this);
    consumer = kafka::make_handle(RD_KAFKA_CONSUMER, std::move(conf));
    rd_kafka_poll_set_consumer(consumer.get());
    const std::string instance = config.processor.instance_id.empty()
                                     ? default_instance_id(config.processor.data_dir)
                                     : config.processor.instance_id;
    producer = kafka::make_handle(
        RD_KAFKA_PRODUCER,
        kafka::make_conf(config.kafka,
                         {{"transactional.id", config.processor.group_id + "-" + instance},
                          {"enable.idempotence", "true"},
                          {"acks", "all"},
                          {"linger.ms", "5"},
                          {"compression.type", "lz4"},
                          // A dead instance's open transaction holds its partitions' offsets
                          // (and read_committed output) until the broker aborts it: keep it
                          // short; a batch's transaction lasts well under a second.
                          {"transaction.timeout.ms", "20000"}}));
    for (;;) {
      const auto status = kafka::classify(rd_kafka_init_transactions(producer.get(), 60000));
      if (status.ok()) break;
      if (status.cls != kafka::ErrorClass::retriable) {
        throw std::runtime_error("processor: init_transactions: " + status.message);
      }
      spdlog::warn("processor: init_transactions: {} (retrying)", status.message);
    }
    // The output topics' metadata now, not at the first payment after a start: the first record
    // produced to a topic the producer has not seen waits for a metadata round trip and leader
    // lookup, which showed as a ~0.45 s stall of the first webhooks after a restart.
    revenue_rkt.reset(rd_kafka_topic_new(producer.get(), revenue_topic.c_str(), nullptr));
    dead_letter_rkt.reset(rd_kafka_topic_new(producer.get(), dead_letter_topic.c_str(), nullptr));
    for (auto* rkt : {revenue_rkt.get(), dead_letter_rkt.get()}) {
      const rd_kafka_metadata_t* md = nullptr;
      if (const auto err = rd_kafka_metadata(producer.get(), 0, rkt, &md, 10000)) {
        spdlog::warn("processor: no metadata for {} yet ({}); it is fetched at the first record",
                     rd_kafka_topic_name(rkt), rd_kafka_err2str(err));
      } else {
        rd_kafka_metadata_destroy(md);
      }
    }
    kafka::PartitionListPtr subscription(rd_kafka_topic_partition_list_new(3));
    for (const auto& t : input_topics) {
      rd_kafka_topic_partition_list_add(subscription.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    if (auto err = rd_kafka_subscribe(consumer.get(), subscription.get())) {
      throw std::runtime_error(std::string("processor: subscribe failed: ") + rd_kafka_err2str(err));
    }
    metrics.gauge_fn("revtrace_processor_state_bytes", "Approximate RocksDB state size.", "",
                     [this] { return static_cast<double>(state->approximate_size()); });
    metrics.gauge_fn("revtrace_processor_state_cache_bytes",
                     "Memory held by the state cache (values and their keys).", "",
                     [this] { return static_cast<double>(cache_bytes.load()); });
    for (const bool ingested : {false, true}) {
      metrics.gauge_fn("revtrace_processor_state_checkpoints",
                       "State checkpoints written to RocksDB since the start, by how: through the "
                       "WAL, or ingested as a table file (processor.checkpoint_ingest_bytes).",
                       ingested ? "how=\"ingested\"" : "how=\"wal\"", [this, ingested] {
                         return static_cast<double>(checkpoints_written(ingested));
                       });
    }
    metrics.gauge_fn("revtrace_processor_records_per_second",
                     "Input records processed per second (live and rebuild), over the last second "
                     "or more.", "", [this] { return records_per_second.load(); });
  }

  // Produces one output record inside the batch's transaction. A refusal (the transaction needs
  // aborting, or the producer failed fatally) is kept in produce_status, which decides the batch's
  // fate after its records; nothing more is produced in that batch.
  void produce(Lane& lane, rd_kafka_topic_t* topic, std::string_view key, std::string_view value,
               bool null_value = false) {
    kafka::Status& produce_status = lane.produce_status;
    if (!produce_status.ok()) return;
    for (;;) {
      const auto err = rd_kafka_producev(
          producer.get(), RD_KAFKA_V_RKT(topic),
          RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
          RD_KAFKA_V_VALUE(null_value ? nullptr : const_cast<char*>(value.data()),
                           null_value ? 0 : value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        if (err) {
          produce_status = kafka::classify(err);
          // A refused produce inside a transaction is never retried on its own: the batch is
          // aborted and re-done (or, fatal, the process exits).
          if (produce_status.cls == kafka::ErrorClass::retriable) {
            produce_status.cls = kafka::ErrorClass::abortable;
          }
          produce_status.message =
              "produce to " + std::string(rd_kafka_topic_name(topic)) + ": " + produce_status.message;
        }
        return;
      }
      rd_kafka_poll(producer.get(), 10);
    }
  }

  // Feeds one record to its partition's engine; writes outputs unless `suppress` (state rebuild).
  // `rank`: the record's topic_rank (0 web events, 1 checkout redirects, 2 Stripe events). Runs on
  // the record's lane's thread.
  void handle(Lane& lane, const rd_kafka_message_t* m, bool suppress, int rank) {
    const std::string_view value(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
    auto& engine = engine_for(lane, m->partition);
    domain::Outcome outcome;
    if (rank == 0) {
      outcome = engine.on_web_event(value);
    } else if (rank == 1) {
      outcome = engine.on_checkout_redirect(value);
    } else {
      outcome = engine.on_stripe_event(value);
    }
    (suppress ? replayed : records_in).inc();
    if (outcome.forced_revisions > 0) forced_revisions.inc(outcome.forced_revisions);
    if (outcome.expired_visitors > 0) expired_visitors.inc(outcome.expired_visitors);
    if (suppress) return;
    switch (outcome.kind) {
      case domain::Outcome::Kind::applied:
        for (const auto& rec : outcome.revenue) {
          // A tombstone retires a payment key that was merged into another payment.
          produce(lane, revenue_rkt.get(), rec.key, rec.tombstone ? std::string_view{} : with_generation(rec.value),
                  rec.tombstone);
          revenue_out.inc();
        }
        break;
      case domain::Outcome::Kind::skipped:
        skipped.inc();
        (outcome.skip == domain::Outcome::Skip::unused_type  ? skipped_unused
         : outcome.skip == domain::Outcome::Skip::no_payment ? skipped_no_payment
                                                             : skipped_duplicate)
            .inc();
        break;
      case domain::Outcome::Kind::invalid: {
        const auto letter = dead_letter_record(outcome.reason, m);
        produce(lane, dead_letter_rkt.get(), letter.key, letter.value);
        dead_letters.inc();
        spdlog::warn("processor: dead-lettered {}[{}]@{}: {}",
                     topics::contract_name(config.kafka, rd_kafka_topic_name(m->rkt)), m->partition,
                     m->offset,
                     outcome.reason);
        break;
      }
    }
  }

  // The engine's record with the configured generation as its first field.
  std::string with_generation(const std::string& value) const {
    return generation_prefix + value.substr(1);
  }

  // topic_rank of a record's topic, from a cache of the (three) topic names seen.
  int rank_of(const rd_kafka_message_t* m) {
    const char* name = rd_kafka_topic_name(m->rkt);
    for (const auto& [known, rank] : topic_ranks) {
      if (known == name) return rank;
    }
    const int rank = topic_rank(name);
    topic_ranks.emplace_back(name, rank);
    return rank;
  }

  int topic_rank(std::string_view full) const {
    const auto topic = topics::contract_name(config.kafka, full);
    return topic == topics::kWebEvents ? 0 : topic == topics::kCheckoutRedirects ? 1 : 2;
  }

  bool group_catching_up(std::int32_t partition) const {
    for (const auto& [tp, target] : catch_up) {
      if (tp.partition == partition) return true;
    }
    return false;
  }

  // A partition number goes live only when all its topics have caught up: a live record of one
  // topic must not be computed while another topic's history is still being replayed (its
  // changes would then be suppressed). Such records leave the batch; their partition is rewound
  // to them and paused until the group has caught up.
  void defer_live_records_of_catching_up_groups(std::vector<kafka::MessagePtr>& batch) {
    if (catch_up.empty()) return;
    std::map<TopicPartition, std::int64_t> rewind;
    std::vector<kafka::MessagePtr> kept;
    for (auto& m : batch) {
      TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
      auto it = catch_up.find(tp);
      const bool replaying = it != catch_up.end() && m->offset < it->second;
      if (replaying || !group_catching_up(m->partition)) {
        kept.push_back(std::move(m));
        continue;
      }
      auto [r, inserted] = rewind.try_emplace(tp, m->offset);
      if (!inserted) r->second = std::min(r->second, m->offset);
      // A record at or past this topic's own target: everything before it was delivered.
      if (it != catch_up.end()) end_of[tp] = std::max(end_of[tp], m->offset);
    }
    batch = std::move(kept);
    for (const auto& [tp, offset] : rewind) {
      kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
      rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = offset;
      if (paused.insert(tp).second) rd_kafka_pause_partitions(consumer.get(), list.get());
      eof_pending.erase(tp);  // the rewound records come again, and so does their end
      if (auto* e = rd_kafka_seek_partitions(consumer.get(), list.get(), 10000)) {
        spdlog::error("processor: rewinding {}[{}] failed: {}", tp.topic, tp.partition,
                      rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    }
  }

  // Kafka orders records within a partition, not across topics: after an assignment, one input
  // topic's partition can start fetching seconds before another's (each is positioned on its
  // own), so a payment could be computed before the pageviews written before it and emit an
  // unattributed revision that the next batch revises. A partition number's live records
  // therefore wait (in memory, in order, for the next batch) until each of its assigned input
  // partitions has been fetched once since the assignment: a record or its end came. Records
  // replayed with output suppressed do not wait; after kFirstFetchWait (a topic's leader gone)
  // the records go on without the missing topic; on shutdown nothing waits.
  void hold_records_until_all_topics_fetched(std::vector<kafka::MessagePtr>& batch) {
    if (delivery.size() >= assignment.size()) return;  // every assigned partition fetched
    const auto now = std::chrono::steady_clock::now();
    std::map<std::int32_t, bool> waits;  // by partition number
    auto must_wait = [&](const rd_kafka_message_t* m) {
      if (stopping.load()) return false;
      if (!catch_up.empty()) {
        auto target = catch_up.find({rd_kafka_topic_name(m->rkt), m->partition});
        if (target != catch_up.end() && m->offset < target->second) return false;
      }
      auto [it, inserted] = waits.try_emplace(m->partition, false);
      if (!inserted) return it->second;
      std::vector<std::string> missing;
      for (const auto& t : input_topics) {
        const TopicPartition other{t, m->partition};
        if (assignment.count(other) && !delivery.count(other)) missing.push_back(t);
      }
      if (missing.empty()) return false;
      const auto since = held_since.try_emplace(m->partition, now).first->second;
      if (now - since < kFirstFetchWait) return it->second = true;
      std::string names;
      for (const auto& t : missing) {
        names += (names.empty() ? "" : ", ") + t;
        delivery[{t, m->partition}].at_end = true;  // given up on, as if it had nothing to deliver
      }
      spdlog::warn("processor: partition {}: {} not fetched {} s after the assignment; processing "
                   "the other topics' records without waiting for it", m->partition, names,
                   std::chrono::duration_cast<std::chrono::seconds>(kFirstFetchWait).count());
      first_fetch_timeouts.inc();
      return false;
    };
    std::vector<kafka::MessagePtr> kept;
    kept.reserve(batch.size());
    for (auto& m : batch) {
      if (must_wait(m.get())) {
        held.push_back(std::move(m));
      } else {
        kept.push_back(std::move(m));
      }
    }
    batch = std::move(kept);
  }

  // A record or an end delivered by the consumer: the partition's first fetch since the assignment
  // (hold_records_until_all_topics_fetched) and how far it delivered
  // (hold_records_ahead_of_earlier_topics).
  void note_delivery(const rd_kafka_message_t* m, bool end,
                     std::chrono::steady_clock::time_point now) {
    if (m->rkt != delivery_rkt || m->partition != delivery_partition || delivery_entry == nullptr) {
      delivery_rkt = m->rkt;
      delivery_partition = m->partition;
      delivery_entry = &delivery[{rd_kafka_topic_name(m->rkt), m->partition}];
    }
    Delivery& d = *delivery_entry;
    d.last = now;
    d.at_end = end;
    if (!end) d.max_timestamp = std::max(d.max_timestamp, rd_kafka_message_timestamp(m, nullptr));
  }

  // Event-time alignment. Each input partition is fetched on its own, so with a backlog (a
  // replay, a new consumer group, an instance back after a while) a small topic runs ahead of a
  // large one: Stripe events are processed long before the pageviews and redirects written before
  // them, and each payment is first emitted without its touches and then revised as they come
  // (a 200k-visitor replay emitted about twice the records of one in log order). So, like Kafka
  // Streams' choice of the lowest timestamp among a task's partitions, a redirect or Stripe record
  // waits (in memory, for a next batch) while an earlier topic's partition of the same number
  // still has records to deliver (it has not reported its end since its last record) and has not
  // yet delivered one with the record's timestamp or a later one. A partition's records wait as a
  // suffix: once one waits, the later ones of its partition do too, so offsets are committed only
  // below the first waiting record. Nothing waits for a partition silent for kAlignStall, longer
  // than processor.event_time_max_wait_ms, while a partition number is rebuilding its state, once
  // processor.event_time_max_waiting records wait, or on shutdown.
  void hold_records_ahead_of_earlier_topics(std::vector<kafka::MessagePtr>& batch) {
    const auto max_waiting = static_cast<std::size_t>(config.processor.event_time_max_waiting);
    const std::chrono::milliseconds max_wait(config.processor.event_time_max_wait_ms);
    if (max_waiting == 0 || !catch_up.empty() || stopping.load()) return;
    const auto now = std::chrono::steady_clock::now();
    // The timestamp up to which the topics ranked before `rank` delivered partition `p` (the
    // largest value when none of them holds anything back), computed once per batch.
    std::map<std::pair<std::int32_t, int>, std::int64_t> horizons;
    auto horizon = [&](std::int32_t p, int rank) {
      auto [it, inserted] = horizons.try_emplace({p, rank}, std::numeric_limits<std::int64_t>::max());
      if (!inserted) return it->second;
      for (const auto& t : input_topics) {
        if (topic_rank(t) >= rank) continue;
        auto d = delivery.find({t, p});
        // Never delivered: the first fetch's wait (hold_records_until_all_topics_fetched) covers it.
        if (d == delivery.end() || d->second.at_end || now - d->second.last > kAlignStall) continue;
        it->second = std::min(it->second, d->second.max_timestamp);
      }
      return it->second;
    };
    std::vector<kafka::MessagePtr> kept;
    kept.reserve(batch.size());
    const rd_kafka_topic_t* run_topic = nullptr;  // the batch is sorted by topic, partition, offset
    std::int32_t run_partition = -1;
    int rank = 0;
    bool waiting = false;  // a record of the current partition waits: the rest of it does too
    bool waited_long = false;  // the current partition's records have waited max_wait
    TopicPartition run_tp;
    std::set<TopicPartition> seen, waited;
    for (auto& m : batch) {
      if (m->rkt != run_topic || m->partition != run_partition) {
        if (m->rkt != run_topic) rank = rank_of(m.get());
        run_topic = m->rkt;
        run_partition = m->partition;
        waiting = false;
        if (rank > 0) {
          run_tp = {rd_kafka_topic_name(m->rkt), m->partition};
          seen.insert(run_tp);
          auto since = waiting_since.find(run_tp);
          waited_long = since != waiting_since.end() && now - since->second >= max_wait;
        }
      }
      if (!waiting && !waited_long && rank > 0 && held.size() < max_waiting) {
        const auto ts = rd_kafka_message_timestamp(m.get(), nullptr);
        waiting = ts >= 0 && ts > horizon(m->partition, rank);
        if (waiting) waited.insert(run_tp);
      }
      if (waiting) {
        aligned_holds.inc();
        held.push_back(std::move(m));
      } else {
        kept.push_back(std::move(m));
      }
    }
    batch = std::move(kept);
    // A partition's wait starts when a record of it first waits, and ends when none does.
    for (const auto& tp : seen) {
      if (waited.count(tp)) {
        waiting_since.try_emplace(tp, now);
      } else {
        waiting_since.erase(tp);
      }
    }
  }

  bool holds_records_of(const TopicPartition& tp) const {
    for (const auto& m : held) {
      if (m->partition == tp.partition && tp.topic == rd_kafka_topic_name(m->rkt)) return true;
    }
    return false;
  }

  // Adds the microseconds since `since` to a phase's counter; returns now (the next phase's start).
  static std::chrono::steady_clock::time_point add_elapsed(common::metrics::Counter& phase,
                                                           std::chrono::steady_clock::time_point since) {
    const auto now = std::chrono::steady_clock::now();
    phase.inc(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - since).count()));
    return now;
  }

  // Processes one batch in one transaction; returns false when the process must stop.
  bool process_batch(std::vector<kafka::MessagePtr>& batch) {
    // A deterministic order within the batch (web evidence before payments, then offsets): fewer
    // intermediate revisions, and the same order whenever the same batch is re-run.
    {
      // The sort keys are copied out of the messages: comparing through the pointers missed the
      // CPU cache at every comparison.
      struct Keyed {
        int rank;
        std::int32_t partition;
        std::int64_t offset;
        kafka::MessagePtr m;
      };
      std::vector<Keyed> keyed;
      keyed.reserve(batch.size());
      for (auto& m : batch) {
        const int rank = rank_of(m.get());
        keyed.push_back({rank, m->partition, m->offset, std::move(m)});
      }
      std::stable_sort(keyed.begin(), keyed.end(), [](const Keyed& a, const Keyed& b) {
        if (a.rank != b.rank) return a.rank < b.rank;
        if (a.partition != b.partition) return a.partition < b.partition;
        return a.offset < b.offset;
      });
      for (std::size_t i = 0; i < keyed.size(); ++i) batch[i] = std::move(keyed[i].m);
    }
    defer_live_records_of_catching_up_groups(batch);
    hold_records_until_all_topics_fetched(batch);
    hold_records_ahead_of_earlier_topics(batch);
    if (batch.empty()) {
      // Every record waits: what a poll that brought nothing does (partitions caught up by their
      // end go live, ends count as progress), as the loop polls with records in hand meanwhile.
      finish_catch_up();
      record_progress({});
      return true;
    }
    std::map<TopicPartition, std::int64_t> first;
    std::map<TopicPartition, std::int64_t> next;       // every record: the local state's offsets
    std::map<TopicPartition, std::int64_t> live_next;  // records with output: the group's offsets
    std::vector<bool> suppress(batch.size(), false);
    // The batch is sorted by topic and partition: each partition's records are one run.
    for (std::size_t begin = 0; begin < batch.size();) {
      const auto* head = batch[begin].get();
      std::size_t end = begin + 1;
      while (end < batch.size() && batch[end]->rkt == head->rkt &&
             batch[end]->partition == head->partition) {
        ++end;
      }
      TopicPartition tp{rd_kafka_topic_name(head->rkt), head->partition};
      auto target = catch_up.find(tp);
      std::int64_t live = -1;
      for (std::size_t i = begin; i < end; ++i) {
        const auto offset = batch[i]->offset;
        suppress[i] = target != catch_up.end() && offset < target->second;
        if (!suppress[i]) live = std::max(live, offset + 1);
      }
      first.try_emplace(tp, head->offset);
      auto& n = next[tp];
      n = std::max(n, batch[end - 1]->offset + 1);
      if (live >= 0) {
        auto& l = live_next[tp];
        l = std::max(l, live);
      }
      begin = end;
    }
    const bool transactional = !live_next.empty();
    if (transactional) {
      if (auto s = kafka::classify(rd_kafka_begin_transaction(producer.get())); !s.ok()) {
        spdlog::critical("processor: begin_transaction: {}", s.message);
        return false;
      }
    }
    // Each lane processes its partitions' records, in batch order, on its own thread.
    for (auto& lane : lanes) lane.items.clear();
    const rd_kafka_topic_t* run_topic = nullptr;  // the batch is sorted by topic: a rank per run
    int rank = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i]->rkt != run_topic) {
        run_topic = batch[i]->rkt;
        rank = rank_of(batch[i].get());
      }
      lane_of(batch[i]->partition).items.push_back({i, rank});
    }
    auto phase_started = std::chrono::steady_clock::now();
    pool->run([&](std::size_t l) {
      Lane& lane = lanes[l];
      for (const auto& [i, rank] : lane.items) handle(lane, batch[i].get(), suppress[i], rank);
    });
    phase_started = add_elapsed(phase_process, phase_started);
    // A fatal refusal decides over an abortable one.
    kafka::Status status;
    for (auto& lane : lanes) {
      if (!lane.produce_status.ok() &&
          (status.ok() || lane.produce_status.cls == kafka::ErrorClass::fatal)) {
        status = lane.produce_status;
      }
      lane.produce_status = {};
    }
    if (transactional && status.ok()) {
      kafka::PartitionListPtr offsets(
          rd_kafka_topic_partition_list_new(static_cast<int>(live_next.size())));
      for (const auto& [tp, off] : live_next) {
        rd_kafka_topic_partition_list_add(offsets.get(), tp.topic.c_str(), tp.partition)->offset = off;
      }
      std::unique_ptr<rd_kafka_consumer_group_metadata_t, ConsumerGroupMetadataDeleter> group(
          rd_kafka_consumer_group_metadata(consumer.get()));
      status = kafka::classify(
          rd_kafka_send_offsets_to_transaction(producer.get(), offsets.get(), group.get(), 30000));
      if (status.ok()) {
        for (;;) {
          status = kafka::classify(rd_kafka_commit_transaction(producer.get(), 60000));
          if (status.cls != kafka::ErrorClass::retriable) break;
          spdlog::warn("processor: commit_transaction: {} (retrying)", status.message);
        }
      }
    }
    phase_started = add_elapsed(phase_commit, phase_started);
    if (status.ok()) {
      // Kafka committed first; the state follows at the next checkpoint. A crash before that
      // leaves the local state behind the group's offsets, which the next assignment repairs by
      // re-processing the gap.
      for (const auto& [tp, off] : next) cache_for(tp.partition).set_offset(tp, off);
      for (auto& lane : lanes) {
        StateCache& cache = *lane.cache;
        cache.commit();
        if (cache.checkpoint_due()) {
          const auto started = std::chrono::steady_clock::now();
          cache.checkpoint(false);
          const auto took = std::chrono::steady_clock::now() - started;
          if (took > 100ms) {
            spdlog::warn("processor: checkpoint {} held processing for {} ms (state cache {} MiB)",
                         cache.checkpoints(),
                         std::chrono::duration_cast<std::chrono::milliseconds>(took).count(),
                         cache.cached_bytes() >> 20);
          }
        } else {
          cache.trim();
        }
      }
      add_elapsed(phase_state, phase_started);
      if (transactional) commits.inc();
      finish_catch_up();
      record_progress(next);
      return true;
    }
    if (status.cls == kafka::ErrorClass::fatal) {
      spdlog::critical("processor: fatal Kafka error: {}; exiting for the supervisor to restart",
                       status.message);
      return false;
    }
    spdlog::warn("processor: transaction aborted ({}); rewinding {} partitions", status.message,
                 first.size());
    for (auto& lane : lanes) lane.cache->discard();
    end_of.clear();   // the rewind re-delivers what the aborted batch held
    eof_pending.clear();
    // Records of a rewound partition that were waiting (event-time alignment) follow the batch's
    // in their partition: the rewind delivers them again.
    std::erase_if(held, [&](const kafka::MessagePtr& m) {
      return first.count({rd_kafka_topic_name(m->rkt), m->partition}) > 0;
    });
    aborts.inc();
    if (auto s = kafka::classify(rd_kafka_abort_transaction(producer.get(), 60000)); !s.ok()) {
      spdlog::critical("processor: abort_transaction: {}", s.message);
      return false;
    }
    for (const auto& [tp, off] : first) {
      kafka::PartitionListPtr rewind(rd_kafka_topic_partition_list_new(1));
      rd_kafka_topic_partition_list_add(rewind.get(), tp.topic.c_str(), tp.partition)->offset = off;
      if (auto* e = rd_kafka_seek_partitions(consumer.get(), rewind.get(), 10000)) {
        spdlog::critical("processor: rewind failed: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return false;
      }
    }
    return true;
  }

  // process_batch, with a failure (false or an exception) leaving the state as the last
  // committed batch left it and marking the processor unhealthy; false when the loop must stop.
  bool run_batch(std::vector<kafka::MessagePtr>& batch) {
    try {
      if (process_batch(batch)) return true;
    } catch (const std::exception& e) {
      spdlog::critical("processor: {}", e.what());
    }
    for (auto& lane : lanes) lane.cache->discard();
    healthy.store(false);
    return false;
  }

  void run() {
    std::vector<kafka::MessagePtr> batch;
    while (!stopping.load()) {
      batch = std::move(held);  // records waiting for their partition number's first fetches
      held.clear();
      // Only records polled now count towards the batch's size: held ones must not stop the
      // polling that brings the fetches they wait for.
      const std::size_t limit = batch.size() + kMaxBatchRecords;
      settle_held();
      sample_rate();
      rebalanced = false;
      const auto poll_started = std::chrono::steady_clock::now();
      const auto deadline = std::chrono::steady_clock::now() +
                            std::chrono::milliseconds(config.processor.transaction_interval_ms);
      while (batch.size() < limit) {
        // One clock read per record (the deadline, note_delivery): at a million records a second
        // the clock is not free.
        const auto now = std::chrono::steady_clock::now();
        if (!batch.empty() && now >= deadline) break;
        // A record already fetched is taken without a timeout first: given one, librdkafka reads
        // the clock several times more per call.
        kafka::MessagePtr m(batch.empty() ? nullptr : rd_kafka_consumer_poll(consumer.get(), 0));
        if (!m) {
          const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
          m.reset(rd_kafka_consumer_poll(
              consumer.get(), batch.empty() ? 100 : static_cast<int>(std::max<long>(0, left.count()))));
        }
        if (rebalanced) {
          // Records collected before the assignment changed are re-fetched from the positions the
          // new assignment set; a record returned by this poll already comes from them.
          batch.clear();
          rebalanced = false;
        }
        if (!m) {
          if (batch.empty() && !stopping.load()) {
            settle_held();
            sample_rate();
            finish_catch_up();
            record_progress({});
            continue;
          }
          break;
        }
        if (!unsettled.empty() && unsettled.count({rd_kafka_topic_name(m->rkt), m->partition})) {
          // Fetched in the moment between assigning a held partition and pausing it: it is
          // fetched again from where settling it positions it. An end reached then still counts
          // as its first fetch: a partition resumed at that end may not report it again.
          if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) note_delivery(m.get(), true, now);
          continue;
        }
        if (m->err) {
          if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            note_delivery(m.get(), true, now);
            // Every record before this end was delivered (and is in this batch or processed).
            end_of[{rd_kafka_topic_name(m->rkt), m->partition}] = m->offset;
            eof_pending[{rd_kafka_topic_name(m->rkt), m->partition}] = m->offset;
          } else {
            spdlog::warn("processor: consumer: {}", rd_kafka_message_errstr(m.get()));
          }
          continue;
        }
        note_delivery(m.get(), false, now);
        batch.push_back(std::move(m));
      }
      if (batch.empty()) continue;
      add_elapsed(phase_poll, poll_started);
      if (!run_batch(batch)) return;
    }
    // Records still waiting for a first fetch were delivered: they are processed before leaving
    // (nothing waits once stopping is set).
    if (!held.empty()) {
      batch = std::move(held);
      held.clear();
      if (!run_batch(batch)) return;
    }
    try {
      checkpoint_all();
      spdlog::info("processor: state checkpointed ({} checkpoints: {} written through the WAL, {} "
                   "ingested as table files, the others empty)", checkpoints(),
                   checkpoints_written(false), checkpoints_written(true));
    } catch (const std::exception& e) {
      spdlog::critical("processor: {}", e.what());
      healthy.store(false);
    }
  }

  // Records per second since the previous sample, sampled at most once a second.
  void sample_rate() {
    std::size_t bytes = 0;
    for (const auto& lane : lanes) bytes += lane.cache->cached_bytes();
    cache_bytes.store(bytes);
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - rate_sampled_at).count();
    if (elapsed < 1.0) return;
    const auto total = records_in.value() + replayed.value();
    records_per_second.store(static_cast<double>(total - rate_sampled_total) / elapsed);
    rate_sampled_total = total;
    rate_sampled_at = now;
  }

  // The processed position of every assigned partition, which the lag metric reports against:
  // the offsets a batch committed, and the end of a partition once every record before it was
  // processed (an end past the last record is a transaction marker or aborted records, which a
  // read_committed consumer never sees). rd_kafka_position() cannot serve here: it stays invalid
  // for a partition assigned at its end until a record arrives.
  void record_progress(const std::map<TopicPartition, std::int64_t>& committed) {
    std::lock_guard lock(assignment_mutex);
    for (const auto& [tp, off] : committed) {
      auto& p = progress[tp];
      p = std::max(p, off);
    }
    for (auto it = eof_pending.begin(); it != eof_pending.end();) {
      const auto& [tp, end] = *it;
      if (paused.count(tp) || unsettled.count(tp) || catch_up.count(tp) || !assignment.count(tp) ||
          holds_records_of(tp)) {
        ++it;
        continue;
      }
      auto& p = progress[tp];
      p = std::max(p, end);
      it = eof_pending.erase(it);
    }
  }

  // Consumer lag per assigned partition: the partition's end, asked from the broker for all
  // partitions in one ListOffsets round (an offsets_for_times lookup at the logical end), minus
  // the processed position. The consumer's cached high watermarks cannot serve: a partition that
  // is paused (held, or waiting for its group to catch up) fetches nothing, and one assigned
  // again keeps the watermark cached while it was last owned, so a stale end could equal the
  // local state's offset and report a lag of 0 for records nobody processed. No lock is held
  // while asking the broker; partitions the broker did not answer for are left out.
  std::string lag_metrics() {
    std::string out =
        "# HELP revtrace_processor_consumer_lag Records behind the partition's end.\n"
        "# TYPE revtrace_processor_consumer_lag gauge\n";
    std::map<TopicPartition, std::int64_t> positions;
    {
      std::lock_guard lock(assignment_mutex);
      for (const auto& tp : assignment) positions[tp] = progress.count(tp) ? progress.at(tp) : 0;
    }
    if (positions.empty()) return out;
    kafka::PartitionListPtr ends(rd_kafka_topic_partition_list_new(static_cast<int>(positions.size())));
    for (const auto& [tp, pos] : positions) {
      rd_kafka_topic_partition_list_add(ends.get(), tp.topic.c_str(), tp.partition)->offset =
          RD_KAFKA_OFFSET_END;  // as a timestamp: the latest offset
    }
    if (rd_kafka_offsets_for_times(consumer.get(), ends.get(), 2000)) return out;
    for (int i = 0; i < ends->cnt; ++i) {
      const auto& e = ends->elems[i];
      if (e.err || e.offset < 0) continue;
      const std::int64_t pos = positions.at({e.topic, e.partition});
      out += "revtrace_processor_consumer_lag{topic=\"" + std::string(e.topic) +
             "\",partition=\"" + std::to_string(e.partition) + "\"} " +
             std::to_string(std::max<std::int64_t>(0, e.offset - pos)) + "\n";
    }
    return out;
  }


  const common::Config& config;
  common::metrics::Registry& metrics;
  common::metrics::Counter& records_in;
  common::metrics::Counter& replayed;
  common::metrics::Counter& revenue_out;
  common::metrics::Counter& dead_letters;
  common::metrics::Counter& skipped;
  common::metrics::Counter& skipped_unused;
  common::metrics::Counter& skipped_no_payment;
  common::metrics::Counter& skipped_duplicate;
  common::metrics::Counter& commits;
  common::metrics::Counter& aborts;
  common::metrics::Counter& rebalances;
  common::metrics::Counter& forced_revisions;
  common::metrics::Counter& expired_visitors;
  common::metrics::Counter& first_fetch_timeouts;
  common::metrics::Counter& aligned_holds;
  // Where a batch's wall time goes (microseconds): collecting records, processing them on the
  // lanes, the Kafka transaction, and the state commit with its checkpoint or eviction.
  static constexpr const char* kPhaseName = "revtrace_processor_batch_phase_microseconds_total";
  static constexpr const char* kPhaseHelp = "Wall time of the batch loop's phases.";
  common::metrics::Counter& phase_poll;
  common::metrics::Counter& phase_process;
  common::metrics::Counter& phase_commit;
  common::metrics::Counter& phase_state;
  std::vector<std::pair<std::string, int>> topic_ranks;  // rank_of's cache
  std::string generation_prefix;
  std::vector<std::string> input_topics;
  std::string revenue_topic;
  std::string dead_letter_topic;
  std::unique_ptr<RocksState> state;
  std::vector<Lane> lanes;          // engines and state caches, one per processing thread
  std::unique_ptr<LanePool> pool;
  std::mutex assignment_mutex;
  std::set<TopicPartition> assignment;
  std::map<TopicPartition, std::int64_t> catch_up;  // suppress output below these offsets
  std::map<TopicPartition, std::int64_t> end_of;    // last end-of-partition offset seen
  std::map<TopicPartition, std::int64_t> eof_pending;  // ends seen, not yet counted as progress
  std::map<TopicPartition, std::int64_t> progress;     // processed position (guarded by the mutex)
  std::atomic<double> records_per_second{0};
  std::atomic<std::size_t> cache_bytes{0};
  // (cache_bytes: the lanes' StateCache::cached_bytes(), sampled by the loop)
  std::chrono::steady_clock::time_point rate_sampled_at = std::chrono::steady_clock::now();
  std::uint64_t rate_sampled_total = 0;
  std::set<TopicPartition> unsettled;  // assigned, held paused until committed offsets are readable
  std::set<TopicPartition> paused;
  // Records held for a later batch: until each input partition of their number was fetched once
  // since the assignment (with when that number started waiting;
  // hold_records_until_all_topics_fetched), or for event-time alignment (with when a partition's
  // records started waiting; hold_records_ahead_of_earlier_topics).
  std::vector<kafka::MessagePtr> held;
  std::map<std::int32_t, std::chrono::steady_clock::time_point> held_since;
  std::map<TopicPartition, std::chrono::steady_clock::time_point> waiting_since;
  // What each input partition delivered since the assignment (note_delivery): a partition is in
  // it once it delivered a record or its end, its first fetch.
  struct Delivery {
    std::int64_t max_timestamp = -1;  // the largest record timestamp delivered
    bool at_end = false;              // its end came after its last record: nothing more to fetch
    std::chrono::steady_clock::time_point last;  // its last record or end
  };
  std::map<TopicPartition, Delivery> delivery;
  const rd_kafka_topic_t* delivery_rkt = nullptr;  // note_delivery's last partition and entry
  std::int32_t delivery_partition = -1;
  Delivery* delivery_entry = nullptr;
  bool rebalanced = false;
  kafka::HandlePtr consumer;
  kafka::HandlePtr producer;
  kafka::TopicPtr revenue_rkt;      // the producer's handles of the output topics (destroyed
  kafka::TopicPtr dead_letter_rkt;  // before the producer: declared after it)
  std::unique_ptr<common::http::Server> http;
  std::atomic<bool> stopping{false};
  std::atomic<bool> healthy{true};
  std::thread worker;
};

Processor::Processor(const common::Config& config, common::metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(config, metrics)) {}

Processor::~Processor() { stop(); }

void Processor::start() {
  impl_->open();
  const auto ep = common::parse_endpoint(impl_->config.processor.metrics_listen,
                                         "processor.metrics_listen");
  common::http::ServerOptions opts;
  opts.host = ep.host;
  opts.port = ep.port;
  opts.threads = 1;
  Impl* impl = impl_.get();
  impl_->http = std::make_unique<common::http::Server>(
      opts, [impl](common::http::Request&& req, common::http::Responder respond) {
        namespace http = common::http;
        if (req.target() == "/healthz") {
          respond(impl->healthy.load()
                      ? http::json_response(http::Status::ok, R"({"status":"ok"})")
                      : http::json_error(http::Status::service_unavailable, "unhealthy",
                                         "the processing thread stopped on a fatal error"));
        } else if (req.target() == "/metrics") {
          http::Response res{http::Status::ok, req.version()};
          res.set(boost::beast::http::field::content_type, "text/plain; version=0.0.4");
          res.body() = impl->metrics.render() + impl->lag_metrics();
          res.prepare_payload();
          respond(std::move(res));
        } else {
          respond(http::json_error(http::Status::not_found, "not_found", "no such route"));
        }
      });
  impl_->http->start();
  impl_->worker = std::thread([impl] { impl->run(); });
  spdlog::info("processor: consuming {} input topics as group {}, {} processing threads; metrics on {}:{}",
               topics::kInputTopics.size(), impl_->config.processor.group_id, impl_->lanes.size(),
               opts.host, impl_->http->port());
}

void Processor::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  if (impl_->worker.joinable()) impl_->worker.join();
  if (impl_->consumer) rd_kafka_consumer_close(impl_->consumer.get());
  if (impl_->http) impl_->http->stop(1s);
}

bool Processor::healthy() const noexcept { return impl_->healthy.load(); }

std::map<std::pair<std::string, std::int32_t>, std::int64_t> Processor::positions() const {
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> out;
  std::lock_guard lock(impl_->assignment_mutex);
  if (impl_->assignment.empty()) return out;
  kafka::PartitionListPtr list(
      rd_kafka_topic_partition_list_new(static_cast<int>(impl_->assignment.size())));
  for (const auto& tp : impl_->assignment) {
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
  }
  rd_kafka_position(impl_->consumer.get(), list.get());
  for (int i = 0; i < list->cnt; ++i) {
    out[{list->elems[i].topic, list->elems[i].partition}] = list->elems[i].offset;
  }
  return out;
}

std::uint64_t Processor::records_processed() const noexcept {
  return impl_->records_in.value() + impl_->replayed.value();
}

}  // namespace revtrace::processor
