#include "processor/state_store.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <set>
#include <stdexcept>

namespace revtrace::processor {
namespace {

constexpr std::string_view kStatePrefix = "s/";
constexpr std::string_view kOffsetPrefix = "o/";

std::string state_key(std::string_view key) {
  std::string k(kStatePrefix);
  k += key;
  return k;
}

std::string offset_key(const TopicPartition& tp) {
  return std::string(kOffsetPrefix) + tp.topic + "/" + std::to_string(tp.partition);
}

}  // namespace

// 64 MiB of cached values (a replay measured no gain from 192 MiB on 2 cores, only RSS), inside
// the 1 GiB bar together with the memtables and the block cache.
constexpr std::size_t kReadCacheBytes = 64u << 20;

const std::optional<std::string>* ReadCache::find(std::string_view key) {
  if (auto it = current_.find(key); it != current_.end()) return &it->second;
  auto it = old_.find(key);
  if (it == old_.end()) return nullptr;
  auto node = old_.extract(it);
  const std::string k(node.key());
  store(k, std::move(node.mapped()));
  return &current_.find(k)->second;
}

void ReadCache::store(std::string_view key, std::optional<std::string> value) {
  if (half_budget_ == 0) return;
  const std::size_t c = cost(key, value);
  if (auto it = current_.find(key); it != current_.end()) {
    current_bytes_ -= cost(key, it->second);
    current_bytes_ += c;
    it->second = std::move(value);
    return;
  }
  if (current_bytes_ + c > half_budget_) {
    old_ = std::move(current_);
    current_ = {};
    current_bytes_ = 0;
  }
  if (auto it = old_.find(key); it != old_.end()) old_.erase(it);
  current_.emplace(std::string(key), std::move(value));
  current_bytes_ += c;
}

void ReadCache::adopt(std::string&& key, std::optional<std::string>&& value) {
  if (half_budget_ == 0) return;
  const std::size_t c = cost(key, value);
  if (auto it = current_.find(key); it != current_.end()) {
    current_bytes_ -= cost(key, it->second);
    current_bytes_ += c;
    it->second = std::move(value);
    return;
  }
  if (current_bytes_ + c > half_budget_) {
    old_ = std::move(current_);
    current_ = {};
    current_bytes_ = 0;
  }
  if (auto it = old_.find(key); it != old_.end()) old_.erase(it);
  current_.emplace(std::move(key), std::move(value));
  current_bytes_ += c;
}

void ReadCache::clear() {
  current_.clear();
  old_.clear();
  current_bytes_ = 0;
}

RocksState::RocksState(const std::string& dir) : cache_(kReadCacheBytes) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.IncreaseParallelism(2);
  // Memory is bounded and sized for millions of visitors (see PERFORMANCE.md): two 64 MiB
  // memtables (OptimizeLevelStyleCompaction's default budget is 512 MiB of them), and one block
  // cache that also holds index and filter blocks, so RSS does not grow with the state on disk.
  options.OptimizeLevelStyleCompaction(128 << 20);
  options.write_buffer_size = 64 << 20;
  options.max_write_buffer_number = 2;
  options.min_write_buffer_number_to_merge = 1;
  options.level_compaction_dynamic_level_bytes = true;
  // A bloom filter over the memtable's keys: a read of a key that is not in the memtable (most
  // of them) skips the skip-list search.
  options.memtable_prefix_bloom_size_ratio = 0.05;
  options.memtable_whole_key_filtering = true;
  // Most reads of a replay are misses (a visitor's first pageview, a payment's first event):
  // a bloom filter answers them without reading a data block.
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(64 << 20);
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.block_size = 16 << 10;
  table.format_version = 5;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // State is ids and small numbers: LZ4 while it is being written, ZSTD once it settles.
  options.compression = rocksdb::kLZ4Compression;
  options.compression_per_level.clear();
  options.bottommost_compression = rocksdb::kZSTD;
  rocksdb::DB* raw = nullptr;
  const auto status = rocksdb::DB::Open(options, dir, &raw);
  if (!status.ok()) throw std::runtime_error("processor: cannot open state " + dir + ": " + status.ToString());
  db_.reset(raw);
}

std::optional<std::string> RocksState::get(std::string_view key) const {
  if (const auto* cached = cache_.find(key)) return *cached;
  std::string value;
  const auto status = db_->Get(rocksdb::ReadOptions(), state_key(key), &value);
  if (status.IsNotFound()) {
    cache_.store(key, std::nullopt);
    return std::nullopt;
  }
  if (!status.ok()) throw std::runtime_error("processor: state read failed: " + status.ToString());
  cache_.store(key, value);
  return value;
}

void RocksState::write(StringMap<std::optional<std::string>>&& changes,
                       const std::map<TopicPartition, std::int64_t>& offsets) {
  rocksdb::WriteBatch batch;
  for (const auto& [k, v] : changes) {
    if (v) {
      batch.Put(state_key(k), *v);
    } else {
      batch.Delete(state_key(k));
    }
  }
  for (const auto& [tp, off] : offsets) batch.Put(offset_key(tp), std::to_string(off));
  // Not synced: the write follows the Kafka commit, so a write the operating system loses in a
  // crash leaves the state behind the committed offsets, which catch-up repairs; the WAL keeps
  // the batch atomic and the writes in order (processor/RECOVERY.md). An fsync per transaction
  // only delayed the next batch (end-to-end latency).
  rocksdb::WriteOptions wo;
  const auto status = db_->Write(wo, &batch);
  if (!status.ok()) {
    cache_.clear();  // whatever the database holds now, the cache must not claim otherwise
    throw std::runtime_error("processor: state write failed: " + status.ToString());
  }
  while (!changes.empty()) {
    auto node = changes.extract(changes.begin());
    cache_.adopt(std::move(node.key()), std::move(node.mapped()));
  }
}

void RocksState::erase_range(std::string_view begin, std::string_view end,
                             const std::vector<TopicPartition>& offsets) {
  rocksdb::WriteBatch batch;
  batch.DeleteRange(state_key(begin), state_key(end));
  for (const auto& tp : offsets) batch.Delete(offset_key(tp));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto status = db_->Write(wo, &batch);
  cache_.clear();
  if (!status.ok()) throw std::runtime_error("processor: state drop failed: " + status.ToString());
}

std::optional<std::int64_t> RocksState::offset(const TopicPartition& tp) const {
  std::string value;
  const auto status = db_->Get(rocksdb::ReadOptions(), offset_key(tp), &value);
  if (!status.ok()) return std::nullopt;
  return std::stoll(value);
}

std::vector<std::string> RocksState::keys(std::string_view begin, std::string_view end) const {
  std::vector<std::string> out;
  const std::string upper = state_key(end);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(state_key(begin)); it->Valid(); it->Next()) {
    out.emplace_back(it->key().ToStringView().substr(kStatePrefix.size()));
  }
  if (!it->status().ok()) {
    throw std::runtime_error("processor: state scan failed: " + it->status().ToString());
  }
  return out;
}

std::uint64_t RocksState::approximate_size() const {
  std::uint64_t size = 0;
  db_->GetIntProperty("rocksdb.total-sst-files-size", &size);
  std::uint64_t mem = 0;
  db_->GetIntProperty("rocksdb.cur-size-all-mem-tables", &mem);
  return size + mem;
}

std::optional<std::string> StagedStore::get(std::string_view key) const {
  if (auto it = pending_.find(key); it != pending_.end()) return it->second;
  return base_.get(key);
}

void StagedStore::put(std::string_view key, std::string_view value) {
  if (auto it = pending_.find(key); it != pending_.end()) {
    it->second = std::string(value);
  } else {
    pending_.emplace(std::string(key), std::string(value));
  }
}

void StagedStore::erase(std::string_view key) {
  if (auto it = pending_.find(key); it != pending_.end()) {
    it->second = std::nullopt;
  } else {
    pending_.emplace(std::string(key), std::nullopt);
  }
}

std::vector<std::string> StagedStore::keys(std::string_view begin, std::string_view end) const {
  std::set<std::string> merged;
  for (auto& k : base_.keys(begin, end)) {
    if (auto it = pending_.find(k); it == pending_.end() || it->second) merged.insert(std::move(k));
  }
  for (const auto& [k, v] : pending_) {
    if (v && k >= begin && k < end) merged.insert(k);
  }
  return {merged.begin(), merged.end()};
}

void StagedStore::set_offset(const TopicPartition& tp, std::int64_t next_offset) {
  offsets_[tp] = next_offset;
}

void StagedStore::commit() {
  base_.write(std::move(pending_), offsets_);
  discard();
}

void StagedStore::discard() {
  pending_.clear();
  offsets_.clear();
}

std::string partition_prefix(std::int32_t partition) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p%05d/", partition);
  return buf;
}

void drop_partition(RocksState& state, std::int32_t partition,
                    const std::vector<std::string>& input_topics) {
  std::vector<TopicPartition> offsets;
  for (const auto& topic : input_topics) offsets.push_back({topic, partition});
  state.erase_range(partition_prefix(partition), partition_prefix(partition + 1), offsets);
}

}  // namespace revtrace::processor
