#include "processor/state_store.hpp"

#include <pthread.h>
#include <rocksdb/cache.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <stdexcept>

namespace revtrace::processor {
namespace {

constexpr std::string_view kStatePrefix = "s/";
constexpr std::string_view kOffsetPrefix = "o/";

}  // namespace

std::string RocksState::state_key(std::string_view key) {
  std::string k;
  k.reserve(kStatePrefix.size() + key.size());
  k += kStatePrefix;
  k += key;
  return k;
}

std::string RocksState::offset_key(const TopicPartition& tp) {
  return std::string(kOffsetPrefix) + tp.topic + "/" + std::to_string(tp.partition);
}

RocksState::RocksState(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.IncreaseParallelism(2);
  // Compactions catch up in the background at a lower CPU priority than the processing thread
  // (nice), so that on a small machine they do not delay live batches (end-to-end latency);
  // flushes, which writes wait for, keep the normal priority.
  options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW);
  // Memory is bounded and sized for millions of visitors (see PERFORMANCE.md): two 64 MiB
  // memtables (OptimizeLevelStyleCompaction's default budget is 512 MiB of them), and one block
  // cache that also holds index and filter blocks, so RSS does not grow with the state on disk.
  options.OptimizeLevelStyleCompaction(128 << 20);
  options.write_buffer_size = 64 << 20;
  options.max_write_buffer_number = 2;
  options.min_write_buffer_number_to_merge = 1;
  options.level_compaction_dynamic_level_bytes = true;
  // Checkpoints' keys are spread over the whole key space, so every level-0 file overlaps the
  // whole base level, which each level-0 compaction rewrites (ZSTD when it is the bottommost):
  // merging eight files at a time instead of two rewrites it a quarter as often. Compactions
  // took 14.3 of the 67.9 CPU-seconds of a 1M-visitor replay with 2, 8.3 with 8 (PERFORMANCE.md).
  // Reads check up to eight level-0 files' filters, which stay pinned in the block cache.
  options.level0_file_num_compaction_trigger = 8;
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
  // A table file of a checkpoint that a crash left before its ingestion is not in the database.
  // (Only now: the open holds the database's lock.)
  ingest_dir_ = (std::filesystem::path(dir) / "ingest").string();
  std::filesystem::remove_all(ingest_dir_);
}

bool RocksState::read(std::string_view key, std::string& out) const {
  const auto status = db_->Get(rocksdb::ReadOptions(), state_key(key), &out);
  if (status.IsNotFound()) return false;
  if (!status.ok()) throw std::runtime_error("processor: state read failed: " + status.ToString());
  return true;
}

std::optional<std::string> RocksState::get(std::string_view key) const {
  std::string value;
  if (!read(key, value)) return std::nullopt;
  return value;
}

rocksdb::Status RocksState::write(rocksdb::WriteBatch& batch) {
  // Not synced: a checkpoint follows the Kafka commits it reflects, so a write the operating
  // system loses in a crash leaves the state behind the committed offsets, which catch-up
  // repairs; the WAL keeps each batch atomic and the batches in order (processor/RECOVERY.md).
  return db_->Write(rocksdb::WriteOptions(), &batch);
}

rocksdb::Status RocksState::ingest(const std::vector<Op>& ops) {
  // Checkpoints written before through the WAL are synced first, so that a power loss cannot keep
  // this one and lose one before it (the checkpoints on disk stay a prefix of those written).
  if (auto status = db_->SyncWAL(); !status.ok()) return status;
  std::error_code ec;
  std::filesystem::create_directories(ingest_dir_, ec);
  if (ec) return rocksdb::Status::IOError(ingest_dir_, ec.message());
  // One file per call: each processing thread's cache has its own writer thread.
  const std::string path = ingest_dir_ + "/checkpoint-" + std::to_string(++ingests_) + ".sst";
  // LZ4 like a flush: SstFileWriter would use the bottommost level's ZSTD, too slow here, and the
  // file lands in level 0 anyway (the keys overlap what is there). It stays in the page cache:
  // compaction reads it soon.
  auto table_options = db_->GetOptions();
  table_options.bottommost_compression = rocksdb::kDisableCompressionOption;
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), table_options, nullptr,
                                /*invalidate_page_cache=*/false);
  auto status = writer.Open(path);
  for (auto op = ops.begin(); status.ok() && op != ops.end(); ++op) {
    status = op->put ? writer.Put(op->key, op->value) : writer.Delete(op->key);
  }
  if (status.ok()) status = writer.Finish();
  if (status.ok()) {
    rocksdb::IngestExternalFileOptions options;
    options.move_files = true;
    // Readers learn the file's sequence number from the manifest; writing it into the file too
    // would be another write and sync of it.
    options.write_global_seqno = false;
    status = db_->IngestExternalFile({path}, options);
  }
  std::filesystem::remove(path, ec);  // moved on success; whatever is left on failure
  return status;
}

void RocksState::erase_range(std::string_view begin, std::string_view end,
                             const std::vector<TopicPartition>& offsets) {
  rocksdb::WriteBatch batch;
  batch.DeleteRange(state_key(begin), state_key(end));
  for (const auto& tp : offsets) batch.Delete(offset_key(tp));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto status = db_->Write(wo, &batch);
  if (!status.ok()) throw std::runtime_error("processor: state drop failed: " + status.ToString());
}

std::optional<std::string> RocksState::meta(std::string_view name) const {
  std::string value;
  const auto status = db_->Get(rocksdb::ReadOptions(), "m/" + std::string(name), &value);
  if (status.IsNotFound()) return std::nullopt;
  if (!status.ok()) throw std::runtime_error("processor: state read failed: " + status.ToString());
  return value;
}

void RocksState::set_meta(std::string_view name, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto status = db_->Put(wo, "m/" + std::string(name), rocksdb::Slice(value.data(), value.size()));
  if (!status.ok()) throw std::runtime_error("processor: state write failed: " + status.ToString());
}

void RocksState::erase_all() {
  rocksdb::WriteBatch batch;
  batch.DeleteRange(std::string(kStatePrefix), "s0");
  batch.DeleteRange(std::string(kOffsetPrefix), "o0");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const auto status = db_->Write(wo, &batch);
  if (!status.ok()) throw std::runtime_error("processor: state drop failed: " + status.ToString());
}

std::optional<std::int64_t> RocksState::offset(const TopicPartition& tp) const {
  std::string value;
  const auto status = db_->Get(rocksdb::ReadOptions(), offset_key(tp), &value);
  if (!status.ok()) return std::nullopt;
  return std::stoll(value);
}

bool RocksState::has_state() const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->Seek(kStatePrefix);
  if (!it->status().ok()) throw std::runtime_error("processor: state scan failed: " + it->status().ToString());
  return it->Valid() && it->key().starts_with(kStatePrefix);
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

// --- StateCache ------------------------------------------------------------------------------

namespace {

// A checkpoint's writes in key order (each key appears once in a checkpoint), for a table file
// to ingest, or for a WriteBatch whose skip-list inserts then go in a run of ascending keys from
// where the previous one went (its sequential splice) instead of searching from the top for each,
// a third of their cost. Done on the writer thread, so the processing thread does not spend its
// time sorting. Views into `batch`. nullopt: unreadable (never for a batch built here).
std::optional<std::vector<RocksState::Op>> in_key_order(const rocksdb::WriteBatch& batch) {
  struct Collect : rocksdb::WriteBatch::Handler {
    std::vector<RocksState::Op> ops;
    void Put(const rocksdb::Slice& key, const rocksdb::Slice& value) override {
      ops.push_back({key, value, true});
    }
    void Delete(const rocksdb::Slice& key) override { ops.push_back({key, {}, false}); }
  } collect;
  collect.ops.reserve(batch.Count());
  if (!batch.Iterate(&collect).ok()) return std::nullopt;
  std::sort(collect.ops.begin(), collect.ops.end(),
            [](const RocksState::Op& a, const RocksState::Op& b) { return a.key.compare(b.key) < 0; });
  return std::move(collect.ops);
}

rocksdb::Status write_checkpoint(RocksState& db, rocksdb::WriteBatch& batch, bool ingest) {
  const auto ops = in_key_order(batch);
  if (!ops) return db.write(batch);
  if (ingest) return db.ingest(*ops);
  rocksdb::WriteBatch sorted(batch.GetDataSize());
  for (const auto& op : *ops) {
    if (op.put) {
      sorted.Put(op.key, op.value);
    } else {
      sorted.Delete(op.key);
    }
  }
  return db.write(sorted);
}

}  // namespace

namespace {
// Six bit positions of 9 bits each (one 512-bit block), from a second mix of the hash.
template <typename F>
void for_each_bit(std::size_t hash, F&& f) {
  std::uint64_t h = static_cast<std::uint64_t>(hash) * 0x9E3779B97F4A7C15ULL;
  h ^= h >> 29;
  for (int i = 0; i < 6; ++i, h >>= 9) f(static_cast<unsigned>(h & 511u));
}
constexpr std::size_t kFirstFilterBlocks = 1u << 14;  // 1 MiB: ~700,000 keys at 12 bits a key
constexpr std::size_t kMaxFilterBytes = 64u << 20;
}  // namespace

void KeyFilter::add(std::size_t hash) {
  if (levels_.empty() || levels_.back().keys >= levels_.back().blocks.size() * 512 / 12) {
    Level next;
    next.blocks.assign(levels_.empty() ? kFirstFilterBlocks : levels_.back().blocks.size() * 2, Block{});
    levels_.push_back(std::move(next));
  }
  Level& level = levels_.back();
  Block& block = level.blocks[(hash >> 7) & (level.blocks.size() - 1)];
  for_each_bit(hash, [&](unsigned bit) { block.words[bit >> 6] |= std::uint64_t{1} << (bit & 63u); });
  ++level.keys;
}

bool KeyFilter::test(const Level& level, std::size_t hash) noexcept {
  const Block& block = level.blocks[(hash >> 7) & (level.blocks.size() - 1)];
  bool all = true;
  for_each_bit(hash, [&](unsigned bit) { all = all && (block.words[bit >> 6] >> (bit & 63u) & 1u); });
  return all;
}

bool KeyFilter::may_contain(std::size_t hash) const noexcept {
  return std::any_of(levels_.begin(), levels_.end(), [&](const Level& l) { return test(l, hash); });
}

std::size_t KeyFilter::bytes() const noexcept {
  std::size_t n = 0;
  for (const auto& l : levels_) n += l.blocks.size() * sizeof(Block);
  return n;
}

StateCache::StateCache(RocksState& db, StateCacheOptions options)
    : db_(db), options_(options), filtering_(!db.has_state()) {
  map_.reserve(1u << 16);
  writer_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "rt:checkpoint");  // top -H
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || pending_write_ != nullptr; });
      if (pending_write_ == nullptr) return;  // stopping, nothing left to write
      auto batch = std::move(pending_write_);
      lock.unlock();
      const bool ingest = batch->GetDataSize() >= options_.checkpoint_ingest_bytes;
      const auto status = write_checkpoint(db_, *batch, ingest);
      if (status.ok()) ++(ingest ? ingested_checkpoints_ : wal_checkpoints_);
      batch.reset();
      lock.lock();
      if (!status.ok() && write_error_.empty()) write_error_ = status.ToString();
      writing_ = false;
      cv_.notify_all();
    }
  });
}

StateCache::~StateCache() {
  {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return !writing_; });
    stopping_ = true;
  }
  cv_.notify_all();
  writer_.join();
  if (options_.shared_bytes) options_.shared_bytes->fetch_sub(published_);
}

std::size_t StateCache::publish() {
  // Unsigned wrap-around makes the difference a correct signed delta.
  const std::size_t total = options_.shared_bytes->fetch_add(bytes_ - published_) + (bytes_ - published_);
  published_ = bytes_;
  return total;
}

StateCache::Node* StateCache::lookup(std::string_view key) {
  const std::size_t hash = std::hash<std::string_view>{}(key);
  if (auto it = map_.find(KeyView{key, hash}); it != map_.end()) return it->get();
  return insert(key, hash);
}

StateCache::Node* StateCache::insert(std::string_view key, std::size_t hash) {
  auto node = std::make_unique<Node>(Node{Key{std::string(key), hash}, Entry{}});
  Node* n = node.get();
  map_.insert(std::move(node));
  n->clock = clock_.size();
  clock_.push_back(n);
  bytes_ += cost(n->first.bytes, n->second);
  return n;
}

void StateCache::load(const Key& key, Entry& e) {
  const std::size_t before = e.value.capacity();
  if (filtering_ && !written_.may_contain(key.hash)) {
    e.known = Known::absent;
  } else {
    e.known = db_.read(key.bytes, e.value) ? Known::present : Known::absent;
  }
  if (e.known == Known::absent) e.value.clear();
  bytes_ += e.value.capacity() - before;
}

const std::string* StateCache::find(std::string_view key) {
  const std::size_t hash = std::hash<std::string_view>{}(key);
  Node* it = nullptr;
  if (auto found = map_.find(KeyView{key, hash}); found != map_.end()) {
    it = found->get();
  } else if (filtering_ && !written_.may_contain(hash)) {
    // Never written: absent, and nothing to remember. (Most reads of a rebuild are such keys; an
    // entry for each would take the budget from entries that exist.)
    return nullptr;
  } else {
    it = insert(key, hash);
  }
  Entry& e = it->second;
  if (e.known == Known::unknown) load(it->first, e);
  e.touched = epoch_;
  return e.known == Known::present ? &e.value : nullptr;
}

void StateCache::stage(Node& kv) {
  Entry& e = kv.second;
  if (e.batch != batch_) {
    undo_.push_back({&e, e});
    e.batch = batch_;
  }
  if (!e.listed) {
    dirty_.push_back(&kv);
    e.listed = true;
  }
  e.dirty = true;
  e.touched = epoch_;
}

// dirty_bytes_ is what the next checkpoint writes: each dirty entry's key and value once, however
// often the entry changed since the last checkpoint (a visitor's timeline is rewritten at each of
// its pageviews). It never falls below that sum: a rollback (discard) leaves it as it is.
void StateCache::count_dirty(const Node& kv, bool was_dirty, std::size_t old_size) {
  const std::size_t now = kv.second.value.size();
  if (!was_dirty) {
    dirty_bytes_ += kv.first.bytes.size() + now;
  } else if (now >= old_size) {
    dirty_bytes_ += now - old_size;
  } else {
    dirty_bytes_ -= std::min(dirty_bytes_, old_size - now);
  }
}

void StateCache::put(std::string_view key, std::string_view value) {
  const auto it = lookup(key);
  Entry& e = it->second;
  const bool was_dirty = e.dirty;
  const std::size_t old_size = e.value.size();
  stage(*it);
  const std::size_t before = e.value.capacity();
  e.value.assign(value);
  e.known = Known::present;
  bytes_ += e.value.capacity() - before;
  count_dirty(*it, was_dirty, old_size);
}

void StateCache::erase(std::string_view key) {
  const auto it = lookup(key);
  Entry& e = it->second;
  const bool was_dirty = e.dirty;
  const std::size_t old_size = e.value.size();
  stage(*it);
  e.value.clear();
  e.known = Known::absent;
  count_dirty(*it, was_dirty, old_size);
}

std::vector<std::string> StateCache::keys(std::string_view begin, std::string_view end) {
  // Everything committed before the latest checkpoint is on disk once its write finished; what
  // changed since is in dirty_.
  wait_for_write();
  // dirty_ in key order up to sorted_; entries appended since are few (a sort is amortized over
  // the scans of one idle sweep, which reads many ranges between few writes).
  const auto by_key = [](const Node* a, const Node* b) { return a->first.bytes < b->first.bytes; };
  if (dirty_.size() - sorted_ > 4096 || (sorted_ == 0 && !dirty_.empty())) {
    std::sort(dirty_.begin() + static_cast<std::ptrdiff_t>(sorted_), dirty_.end(), by_key);
    std::inplace_merge(dirty_.begin(), dirty_.begin() + static_cast<std::ptrdiff_t>(sorted_),
                       dirty_.end(), by_key);
    sorted_ = dirty_.size();
  }
  std::set<std::string, std::less<>> merged;
  for (auto& k : db_.keys(begin, end)) merged.insert(std::move(k));
  const auto apply = [&](const Node* kv) {
    const auto& key = kv->first;
    const auto& e = kv->second;
    const std::string& k = key.bytes;
    if (!e.dirty || k < begin || k >= end) return;
    if (e.known == Known::present) {
      merged.insert(k);
    } else if (auto it = merged.find(k); it != merged.end()) {
      merged.erase(it);
    }
  };
  const auto sorted_end = dirty_.begin() + static_cast<std::ptrdiff_t>(sorted_);
  auto it = std::lower_bound(dirty_.begin(), sorted_end, begin,
                             [](const Node* kv, std::string_view k) { return kv->first.bytes < k; });
  for (; it != sorted_end && (*it)->first.bytes < end; ++it) apply(*it);
  for (auto t = sorted_end; t != dirty_.end(); ++t) apply(*t);
  return {merged.begin(), merged.end()};
}

void StateCache::set_offset(const TopicPartition& tp, std::int64_t next_offset) {
  staged_offsets_[tp] = next_offset;
}

void StateCache::commit() {
  for (auto& [tp, off] : staged_offsets_) offsets_[tp] = off;
  staged_offsets_.clear();
  undo_.clear();
  ++batch_;
}

void StateCache::trim() {
  // Keeps pace with what the batches add: a few times the entries created since the last trim.
  const std::size_t created = clock_.size() > clock_at_trim_ ? clock_.size() - clock_at_trim_ : 0;
  evict(std::clamp<std::size_t>(4 * created, 1u << 13, 1u << 18));
  clock_at_trim_ = clock_.size();
}

void StateCache::discard() {
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
    bytes_ -= it->entry->value.capacity();
    bytes_ += it->before.value.capacity();
    // `listed` says whether dirty_ points at the entry, which the rollback does not change.
    const bool listed = it->entry->listed;
    *it->entry = std::move(it->before);
    it->entry->listed = listed;
  }
  undo_.clear();
  staged_offsets_.clear();
  ++batch_;
}

std::optional<std::int64_t> StateCache::offset(const TopicPartition& tp) const {
  if (auto it = offsets_.find(tp); it != offsets_.end()) return it->second;
  if (auto it = disk_offsets_.find(tp); it != disk_offsets_.end()) return it->second;
  return db_.offset(tp);
}

bool StateCache::checkpoint_due() const {
  if (dirty_.empty() && offsets_.empty()) return false;
  return dirty_bytes_ >= options_.checkpoint_dirty_bytes ||
         std::chrono::steady_clock::now() - last_checkpoint_ >= options_.checkpoint_interval;
}

void StateCache::wait_for_write() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this] { return !writing_; });
  if (!write_error_.empty()) {
    throw std::runtime_error("processor: state checkpoint failed: " + write_error_);
  }
}

void StateCache::evict(std::size_t max_scan) {
  if (!undo_.empty()) return;
  const std::size_t total = options_.shared_bytes ? publish() : bytes_;
  if (total <= options_.budget_bytes) return;
  // An entry not used since the latest checkpoint is on disk: its last change was written by a
  // checkpoint before that one, which has finished (a checkpoint waits for the previous write).
  // While the latest checkpoint is being written, the entries it writes (used in the interval
  // before it) are clean in memory but maybe not on disk yet: only older ones go.
  bool in_flight = false;
  {
    std::lock_guard lock(mutex_);
    in_flight = writing_;
  }
  const std::uint32_t keep_from = in_flight ? epoch_ - 1 : epoch_;
  // Down to 7/8 of the budget, so that eviction runs in bursts rather than at every batch; a cache
  // sharing the budget sheds its share of the excess (in proportion to its size).
  std::size_t target = options_.budget_bytes / 8 * 7;
  if (options_.shared_bytes) {
    const auto share = static_cast<std::size_t>(static_cast<long double>(total - target) * bytes_ / total);
    target = bytes_ > share ? bytes_ - share : 0;
  }
  for (std::size_t scanned = 0; bytes_ > target && scanned < max_scan && !clock_.empty(); ++scanned) {
    if (hand_ >= clock_.size()) hand_ = 0;
    Node* n = clock_[hand_];
    if (n->second.dirty || n->second.listed || n->second.touched >= keep_from) {
      ++hand_;  // in use lately (or not written yet): a second chance
      continue;
    }
    bytes_ -= cost(n->first.bytes, n->second);
    clock_[hand_] = clock_.back();
    clock_[hand_]->clock = hand_;
    clock_.pop_back();
    map_.erase(KeyView{n->first.bytes, n->first.hash});  // frees n
  }
  if (options_.shared_bytes) (void)publish();
}

void StateCache::rebuild_clock() {
  clock_.clear();
  clock_.reserve(map_.size());
  for (const auto& n : map_) {
    n->clock = clock_.size();
    clock_.push_back(n.get());
  }
  hand_ = 0;
}

void StateCache::checkpoint(bool wait) {
  if (!undo_.empty() || !staged_offsets_.empty()) {
    throw std::logic_error("processor: checkpoint inside a batch");
  }
  wait_for_write();
  // The batch's buffer at its final size at once: growing it by doubling copied it (tens of MiB
  // for a replay's checkpoint) and faulted in fresh pages each time. Per entry: the key prefix,
  // a tag and two length varints besides the key and value that dirty_bytes_ counts.
  auto batch = std::make_unique<rocksdb::WriteBatch>(dirty_bytes_ + dirty_.size() * 16 +
                                                     offsets_.size() * 64 + 64);
  const rocksdb::Slice prefix(kStatePrefix.data(), kStatePrefix.size());
  for (auto* kv : dirty_) {
    const auto& key = kv->first;
    auto& e = kv->second;
    const std::string& k = key.bytes;
    e.listed = false;
    if (!e.dirty) continue;
    e.dirty = false;
    const rocksdb::Slice key_parts[2] = {prefix, rocksdb::Slice(k)};  // RocksState::state_key(k)
    const rocksdb::SliceParts db_key(key_parts, 2);
    if (e.known == Known::present) {
      const rocksdb::Slice value(e.value);
      batch->Put(db_key, rocksdb::SliceParts(&value, 1));
      if (filtering_ && !written_.may_contain(key.hash)) {
        written_.add(key.hash);
        // Bounded memory: past ~40 M keys the filter is dropped and every miss reads the database.
        if (written_.bytes() > kMaxFilterBytes) {
          filtering_ = false;
          written_ = KeyFilter{};
        }
      }
    } else {
      batch->Delete(db_key);
    }
  }
  dirty_.clear();
  sorted_ = 0;
  dirty_bytes_ = 0;
  for (const auto& [tp, off] : offsets_) {
    batch->Put(RocksState::offset_key(tp), std::to_string(off));
    disk_offsets_[tp] = off;
  }
  offsets_.clear();
  // No entry is dirty now, and the previous write is on disk: evicting is safe. The entries of
  // this checkpoint are touched in this epoch (never evicted before the next one).
  evict(1u << 18);
  clock_at_trim_ = clock_.size();
  ++epoch_;
  ++checkpoints_;
  last_checkpoint_ = std::chrono::steady_clock::now();
  if (batch->Count() == 0) return;
  {
    std::lock_guard lock(mutex_);
    pending_write_ = std::move(batch);
    writing_ = true;
  }
  cv_.notify_all();
  if (wait) wait_for_write();
}

void StateCache::drop_partition(std::int32_t partition,
                                const std::vector<std::string>& input_topics) {
  if (!undo_.empty()) throw std::logic_error("processor: partition dropped inside a batch");
  wait_for_write();
  const std::string begin = partition_prefix(partition);
  const std::string end = partition_prefix(partition + 1);
  std::vector<TopicPartition> offsets;
  for (const auto& topic : input_topics) {
    offsets.push_back({topic, partition});
    offsets_.erase({topic, partition});
    disk_offsets_.erase({topic, partition});
  }
  dirty_.erase(std::remove_if(dirty_.begin(), dirty_.end(),
                              [&](Node* kv) { return kv->first.bytes >= begin && kv->first.bytes < end; }),
               dirty_.end());
  sorted_ = 0;
  dirty_bytes_ = 0;
  for (auto* kv : dirty_) dirty_bytes_ += kv->first.bytes.size() + kv->second.value.size();
  boost::unordered::erase_if(map_, [&](const std::unique_ptr<Node>& n) {
    if (n->first.bytes < begin || n->first.bytes >= end) return false;
    bytes_ -= cost(n->first.bytes, n->second);
    return true;
  });
  rebuild_clock();
  db_.erase_range(begin, end, offsets);
}

std::string partition_prefix(std::int32_t partition) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p%05d/", partition);
  return buf;
}

}  // namespace revtrace::processor
