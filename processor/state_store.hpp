#pragma once
// The processor's RocksDB state. The engine sees it through domain::StateStore; writes of one
// batch are buffered in a StagedStore and written together with the input offsets they reflect in
// one atomic RocksDB WriteBatch, so state and offsets can never disagree on disk.
#include <rocksdb/db.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// Committed state values recently read or written, present and absent ones, so that the hot path
// (the same visitors and payments again and again) rarely reaches RocksDB, whose memtable search
// dominated the replay profile (PERFORMANCE.md). Write-through: the database stays the truth, the
// cache only mirrors what was committed to it. Two generations bound its memory: when the current
// one reaches half the budget it becomes the old one and the previous old one is dropped; a hit in
// the old generation moves the entry back to the current one.
class ReadCache {
 public:
  explicit ReadCache(std::size_t budget_bytes) : half_budget_(budget_bytes / 2) {}
  // nullptr: unknown; otherwise the cached value (nullopt: known to be absent).
  [[nodiscard]] const std::optional<std::string>* find(std::string_view key);
  void store(std::string_view key, std::optional<std::string> value);
  // The same, taking ownership of the key (no copy when the key is new to the cache).
  void adopt(std::string&& key, std::optional<std::string>&& value);
  void clear();

 private:
  static std::size_t cost(std::string_view key, const std::optional<std::string>& value) {
    return key.size() + (value ? value->size() : 0) + 96;  // + node, hash and string headers
  }
  std::size_t half_budget_;
  std::size_t current_bytes_ = 0;
  StringMap<std::optional<std::string>> current_;
  StringMap<std::optional<std::string>> old_;
};

class RocksState {
 public:
  // Opens (creating if needed) the database in `dir`; throws std::runtime_error with RocksDB's
  // status text on failure.
  explicit RocksState(const std::string& dir);
  [[nodiscard]] std::optional<std::string> get(std::string_view key) const;
  // Offsets (next offset to read) as last written with a batch.
  [[nodiscard]] std::optional<std::int64_t> offset(const TopicPartition& tp) const;
  // State keys (without the store's internal prefix) in [begin, end), ascending.
  [[nodiscard]] std::vector<std::string> keys(std::string_view begin, std::string_view end) const;
  // Writes state changes (nullopt = erase) and offsets in one atomic batch (WAL, not fsynced:
  // see processor/RECOVERY.md). The changes' keys and values move into the read cache:
  // `changes` is left empty.
  void write(StringMap<std::optional<std::string>>&& changes,
             const std::map<TopicPartition, std::int64_t>& offsets);
  // Deletes the state keys in [begin, end) and the given offsets in one synced batch.
  void erase_range(std::string_view begin, std::string_view end,
                   const std::vector<TopicPartition>& offsets);
  // Direct access for reading properties. Writes must go through write() / erase_range(), which
  // keep the read cache in line with the database.
  [[nodiscard]] rocksdb::DB& db() noexcept { return *db_; }
  [[nodiscard]] std::uint64_t approximate_size() const;

 private:
  std::unique_ptr<rocksdb::DB> db_;
  mutable ReadCache cache_;
};

// A write-buffering view over RocksState: reads see the batch's own writes first. Keys are the
// full state keys (see partition_prefix); offsets are staged alongside and written atomically.
class StagedStore {
 public:
  explicit StagedStore(RocksState& base) : base_(base) {}
  [[nodiscard]] std::optional<std::string> get(std::string_view key) const;
  void put(std::string_view key, std::string_view value);
  void erase(std::string_view key);
  // Keys in [begin, end) of the base merged with the staged writes, ascending.
  [[nodiscard]] std::vector<std::string> keys(std::string_view begin, std::string_view end) const;
  void set_offset(const TopicPartition& tp, std::int64_t next_offset);
  // Writes staged state and offsets atomically (WAL, not fsynced), then clears the stage.
  void commit();
  void discard();
  [[nodiscard]] std::size_t staged() const noexcept { return pending_.size(); }

 private:
  RocksState& base_;
  StringMap<std::optional<std::string>> pending_;
  std::map<TopicPartition, std::int64_t> offsets_;
};

// The engine's state of one input partition number (the same number in every co-partitioned
// input topic, so one site's state is always in one scope). Scoping by partition lets a partition's
// state move between instances: it can be dropped and rebuilt on its own.
[[nodiscard]] std::string partition_prefix(std::int32_t partition);

class PartitionStore final : public domain::StateStore {
 public:
  PartitionStore(StagedStore& staged, std::int32_t partition)
      : staged_(staged), prefix_(partition_prefix(partition)) {}
  [[nodiscard]] std::optional<std::string> get(std::string_view key) const override {
    return staged_.get(scoped(key));
  }
  void put(std::string_view key, std::string_view value) override {
    staged_.put(scoped(key), value);
  }
  void erase(std::string_view key) override { staged_.erase(scoped(key)); }
  [[nodiscard]] std::vector<std::string> keys(std::string_view begin,
                                              std::string_view end) const override {
    auto out = staged_.keys(prefix_ + std::string(begin), prefix_ + std::string(end));
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
  StagedStore& staged_;
  std::string prefix_;
  mutable std::string scratch_;
};

// Deletes the state and the stored offsets of one partition number (before a rebuild).
void drop_partition(RocksState& state, std::int32_t partition,
                    const std::vector<std::string>& input_topics);

}  // namespace revtrace::processor
