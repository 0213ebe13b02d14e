#pragma once
// The processor's state: the engine's keys in RocksDB behind one in-memory write-back cache.
//
// The engine reads and writes through StateCache (one hash lookup per access). A batch's writes
// become visible at once and can be rolled back (an aborted Kafka transaction) from an undo log;
// committed writes stay in memory, marked dirty, and reach RocksDB at checkpoints: every few
// seconds (or sooner when much is dirty), in one atomic write together with the input offsets
// they reflect (a WriteBatch, or for a large checkpoint an ingested table file), written on a
// background thread. So state and offsets never disagree on disk, and the disk is at most one
// checkpoint behind the committed output — which catch-up repairs on restart by re-processing
// the gap with output suppressed (processor/RECOVERY.md).
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <boost/unordered/unordered_flat_set.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "processor/domain/state_store.hpp"

namespace revtrace::processor {

// A map keyed by std::string that is searched by string_view without building a string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

struct TopicPartition {
  std::string topic;
  std::int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};

// The database. State keys are stored under "s/", offsets under "o/<topic>/<partition>".
class RocksState {
 public:
  // Opens (creating if needed) the database in `dir`; throws std::runtime_error with RocksDB's
  // status text on failure.
  explicit RocksState(const std::string& dir);
  // A state value as the database holds it (no cache): true and `out` set, or false if absent.
  // Throws on a read error.
  bool read(std::string_view key, std::string& out) const;
  [[nodiscard]] std::optional<std::string> get(std::string_view key) const;
  // Offsets (next offset to read) as last written with a checkpoint.
  [[nodiscard]] std::optional<std::int64_t> offset(const TopicPartition& tp) const;
  // State keys (without the store's internal prefix) in [begin, end), ascending.
  [[nodiscard]] std::vector<std::string> keys(std::string_view begin, std::string_view end) const;
  // Applies `batch` atomically (WAL, not fsynced: processor/RECOVERY.md).
  [[nodiscard]] rocksdb::Status write(rocksdb::WriteBatch& batch);
  // One write of a checkpoint.
  struct Op {
    rocksdb::Slice key, value;
    bool put;  // otherwise a delete
  };
  // Applies `ops` (keys ascending, each once) atomically as one table file written beside the
  // database and ingested into it: a large checkpoint then skips the WAL and the memtable, whose
  // skip-list inserts (and the flush that writes them to a table file again later) were most of
  // the checkpoint writer's work. Synced when it returns, and the WAL before it (what write()
  // applied earlier). For small checkpoints write() is better: each ingested file is a level-0
  // file that compaction merges into the levels below.
  [[nodiscard]] rocksdb::Status ingest(const std::vector<Op>& ops);
  // Deletes the state keys in [begin, end) and the given offsets in one synced batch.
  void erase_range(std::string_view begin, std::string_view end,
                   const std::vector<TopicPartition>& offsets);
  // A property of the whole state ("generation": processor.generation of the rules that built
  // it), stored under "m/"; set_meta writes it synced.
  [[nodiscard]] std::optional<std::string> meta(std::string_view name) const;
  void set_meta(std::string_view name, std::string_view value);
  // Deletes every state key and offset (not the properties), synced.
  void erase_all();
  [[nodiscard]] rocksdb::DB& db() noexcept { return *db_; }
  [[nodiscard]] std::uint64_t approximate_size() const;
  // Whether any state key is stored (an empty state is being built from the log).
  [[nodiscard]] bool has_state() const;

  // The database's key for a state key / an offset.
  [[nodiscard]] static std::string state_key(std::string_view key);
  [[nodiscard]] static std::string offset_key(const TopicPartition& tp);

 private:
  std::string ingest_dir_;  // where ingest() writes its table files; emptied on open
  std::atomic<std::uint64_t> ingests_{0};
  std::unique_ptr<rocksdb::DB> db_;
};

struct StateCacheOptions {
  // Memory for cached values: beyond it, clean values not used lately are evicted a little at a
  // time between batches (dirty ones stay until written).
  std::size_t budget_bytes = 256u << 20;
  // When set, budget_bytes is shared by every cache holding this counter (one per processing
  // thread): each adds its size to it between batches and, over budget, evicts its share of the
  // excess. A busy cache may then use what an idle one does not (one site: one busy partition).
  std::shared_ptr<std::atomic<std::size_t>> shared_bytes;
  // A checkpoint is due after this long, or when this much is dirty, whichever comes first.
  std::chrono::milliseconds checkpoint_interval{5000};
  std::size_t checkpoint_dirty_bytes = 64u << 20;
  // A checkpoint of at least this many bytes (a replay's, a catch-up's) is ingested as a table
  // file (RocksState::ingest); smaller ones (live processing's) go through the WAL.
  std::size_t checkpoint_ingest_bytes = 16u << 20;
};

// Keys that may be on disk, by their hash: a Bloom filter (blocks of one cache line, six bits per
// key) that grows by adding a twice larger filter when the newest is full, so it never needs the
// keys again. False positives only cost a database read.
class KeyFilter {
 public:
  void add(std::size_t hash);
  [[nodiscard]] bool may_contain(std::size_t hash) const noexcept;
  [[nodiscard]] std::size_t bytes() const noexcept;

 private:
  struct Block {
    std::uint64_t words[8];
  };
  struct Level {
    std::vector<Block> blocks;  // a power of two
    std::size_t keys = 0;
  };
  static bool test(const Level& level, std::size_t hash) noexcept;
  std::vector<Level> levels_;
};

// The write-back cache over RocksState. Not thread-safe (the processing thread owns it), except
// that the checkpoint write runs on its own thread. Keys are full state keys (see
// partition_prefix).
class StateCache {
 public:
  StateCache(RocksState& db, StateCacheOptions options = {});
  ~StateCache();  // waits for a checkpoint being written; does not start one
  StateCache(const StateCache&) = delete;
  StateCache& operator=(const StateCache&) = delete;

  // The current value (the batch's own writes included), or nullptr when absent. The pointer is
  // valid until the next put/erase of the same key, discard() or checkpoint().
  [[nodiscard]] const std::string* find(std::string_view key);
  void put(std::string_view key, std::string_view value);
  void erase(std::string_view key);
  // Keys in [begin, end) as the writes so far left them, ascending.
  [[nodiscard]] std::vector<std::string> keys(std::string_view begin, std::string_view end);

  // The batch's input offsets (next offset to read), checkpointed with the state.
  void set_offset(const TopicPartition& tp, std::int64_t next_offset);
  // Ends the batch: its writes and offsets are committed (in memory, for the next checkpoint).
  void commit();
  // Between batches: when over budget, evicts a bounded number of clean entries not used lately.
  void trim();
  // Rolls the batch's writes and offsets back.
  void discard();
  // Local offset of `tp`: the last committed one (in memory or on disk).
  [[nodiscard]] std::optional<std::int64_t> offset(const TopicPartition& tp) const;

  // Whether a checkpoint is due (time or dirty bytes). Call between batches.
  [[nodiscard]] bool checkpoint_due() const;
  // Between batches: writes every committed change and the committed offsets in one atomic
  // write (RocksState::write, or RocksState::ingest from checkpoint_ingest_bytes on). `wait`:
  // returns when it is on disk (WAL or table file); otherwise it is written on a background
  // thread and the next checkpoint (or keys(), drop_partition(), the destructor) waits for it.
  // Throws when a checkpoint write failed (the disk then is behind the committed output:
  // catch-up repairs it).
  void checkpoint(bool wait);
  // Deletes the state and the offsets of one partition number, in memory and on disk.
  void drop_partition(std::int32_t partition, const std::vector<std::string>& input_topics);

  [[nodiscard]] std::size_t cached_bytes() const noexcept { return bytes_; }
  [[nodiscard]] std::size_t dirty_bytes() const noexcept { return dirty_bytes_; }
  [[nodiscard]] std::uint64_t checkpoints() const noexcept { return checkpoints_; }
  // Checkpoint writes finished on disk, through the WAL and ingested as a table file. Any thread.
  [[nodiscard]] std::uint64_t wal_checkpoints() const noexcept { return wal_checkpoints_.load(); }
  [[nodiscard]] std::uint64_t ingested_checkpoints() const noexcept {
    return ingested_checkpoints_.load();
  }

 private:
  enum class Known : std::uint8_t { unknown, absent, present };
  struct Entry {
    std::string value;
    Known known = Known::unknown;  // unknown: read the database
    bool dirty = false;            // committed or staged, not yet in a checkpoint
    bool listed = false;           // in dirty_ (may be listed but no longer dirty, after a rollback)
    std::uint32_t batch = 0;       // batch of its last undo record
    std::uint32_t touched = 0;     // checkpoint epoch of its last access
  };
  struct Undo {
    Entry* entry;
    Entry before;
  };
  // One cached key. Nodes are allocated one by one and never move, so the dirty list and the undo
  // log point at them; the index is an open-addressing table of node pointers (one probe of its
  // metadata, then the node), keyed by the key's hash, which the node keeps.
  struct Key {
    std::string bytes;
    std::size_t hash;
  };
  struct Node {
    Key first;
    Entry second;
    std::size_t clock = 0;  // its index in clock_
  };
  struct KeyView {
    std::string_view bytes;
    std::size_t hash;
  };
  struct NodeHash {
    using is_transparent = void;
    using is_avalanching = void;  // std::hash<std::string_view> mixes well: no second mixing
    std::size_t operator()(const std::unique_ptr<Node>& n) const noexcept { return n->first.hash; }
    std::size_t operator()(const KeyView& k) const noexcept { return k.hash; }
  };
  struct NodeEqual {
    using is_transparent = void;
    bool operator()(const std::unique_ptr<Node>& a, const std::unique_ptr<Node>& b) const noexcept {
      return a == b;
    }
    bool operator()(const KeyView& k, const std::unique_ptr<Node>& n) const noexcept {
      return n->first.hash == k.hash && n->first.bytes == k.bytes;
    }
    bool operator()(const std::unique_ptr<Node>& n, const KeyView& k) const noexcept {
      return (*this)(k, n);
    }
  };
  using Map = boost::unordered_flat_set<std::unique_ptr<Node>, NodeHash, NodeEqual>;
  using Slot = Node;

  Node* lookup(std::string_view key);  // the entry, created unknown if new
  Node* insert(std::string_view key, std::size_t hash);  // a new entry, unknown
  void load(const Key& key, Entry& e);
  void stage(Node& kv);  // before a write: undo record, dirty list
  // After a write: what the next checkpoint writes grew or shrank (was_dirty, old_size: before).
  void count_dirty(const Node& kv, bool was_dirty, std::size_t old_size);
  // Evicts clean entries not used since the latest checkpoint while over budget, looking at up to
  // `max_scan` entries from the clock hand on (bounded work: no pause that grows with the cache).
  // Outside a batch only; never an entry the dirty list points at.
  void evict(std::size_t max_scan);
  // Brings shared_bytes up to date with bytes_; the total of every cache sharing the budget.
  std::size_t publish();
  void rebuild_clock();
  void wait_for_write();
  static std::size_t cost(std::string_view key, const Entry& e) {
    return key.size() + e.value.capacity() + 96;  // + node, hash and string headers
  }

  RocksState& db_;
  StateCacheOptions options_;
  std::size_t published_ = 0;  // bytes_ as last added to options_.shared_bytes
  // Built from empty, the database holds only keys this cache wrote: a key the filter has never
  // seen is absent without a read (most reads of a rebuild are of keys that do not exist yet).
  bool filtering_ = false;
  KeyFilter written_;
  Map map_;
  std::size_t bytes_ = 0;
  // Entries written since the last checkpoint (the first sorted_ of them in key order, so that
  // keys() finds a range without scanning them all).
  std::vector<Node*> clock_;  // every node, in no particular order; eviction sweeps it
  std::size_t hand_ = 0;
  std::size_t clock_at_trim_ = 0;  // clock_.size() after the last eviction
  std::vector<Node*> dirty_;
  std::size_t sorted_ = 0;
  std::size_t dirty_bytes_ = 0;
  std::vector<Undo> undo_;
  std::uint32_t batch_ = 1;
  std::uint32_t epoch_ = 1;
  std::map<TopicPartition, std::int64_t> staged_offsets_;
  std::map<TopicPartition, std::int64_t> offsets_;      // committed, not yet checkpointed
  std::map<TopicPartition, std::int64_t> disk_offsets_;  // in the latest checkpoint
  std::chrono::steady_clock::time_point last_checkpoint_ = std::chrono::steady_clock::now();
  std::uint64_t checkpoints_ = 0;

  // The background writer: one WriteBatch at a time.
  std::mutex mutex_;
  std::condition_variable cv_;
  std::unique_ptr<rocksdb::WriteBatch> pending_write_;
  bool writing_ = false;
  bool stopping_ = false;
  std::string write_error_;
  std::atomic<std::uint64_t> wal_checkpoints_{0};
  std::atomic<std::uint64_t> ingested_checkpoints_{0};
  std::thread writer_;
};

// The engine's state of one input partition number (the same number in every co-partitioned
// input topic, so one site's state is always in one scope). Scoping by partition lets a partition's
// state move between instances: it can be dropped and rebuilt on its own.
[[nodiscard]] std::string partition_prefix(std::int32_t partition);

class PartitionStore final : public domain::StateStore {
 public:
  PartitionStore(StateCache& cache, std::int32_t partition)
      : cache_(cache), prefix_(partition_prefix(partition)) {}
  [[nodiscard]] std::optional<std::string> get(std::string_view key) const override {
    const auto* v = cache_.find(scoped(key));
    if (v == nullptr) return std::nullopt;
    return *v;
  }
  bool read(std::string_view key, std::string& out) const override {
    const auto* v = cache_.find(scoped(key));
    if (v == nullptr) return false;
    out.assign(*v);
    return true;
  }
  void put(std::string_view key, std::string_view value) override {
    cache_.put(scoped(key), value);
  }
  void erase(std::string_view key) override { cache_.erase(scoped(key)); }
  [[nodiscard]] std::vector<std::string> keys(std::string_view begin,
                                              std::string_view end) const override {
    auto out = cache_.keys(prefix_ + std::string(begin), prefix_ + std::string(end));
    for (auto& k : out) k.erase(0, prefix_.size());
    return out;
  }

 private:
  // The full key in a reused buffer (valid until the next call): no allocation per access.
  std::string_view scoped(std::string_view key) const {
    scratch_.assign(prefix_);
    scratch_.append(key);
    return scratch_;
  }
  StateCache& cache_;
  std::string prefix_;
  mutable std::string scratch_;
};

}  // namespace revtrace::processor
