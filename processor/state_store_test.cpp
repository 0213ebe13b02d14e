// The processor's state: what a batch writes is read back at once, rolled back by discard(),
// kept by commit(), and reaches RocksDB (with its offsets, atomically) only at checkpoints; the
// cache evicts only what is on disk and never answers differently from the database.
#include "processor/state_store.hpp"

#include <catch2/catch.hpp>
#include <atomic>
#include <filesystem>
#include <map>
#include <random>

namespace revtrace::processor {
namespace {

struct TempDir {
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("revtrace-state-test-" + std::to_string(rd()));
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};

}  // namespace

TEST_CASE("batch writes read back at once, discard rolls them back, commit keeps them") {
  TempDir dir;
  RocksState state(dir.path.string());
  StateCache cache(state);
  PartitionStore p0(cache, 0);
  PartitionStore p1(cache, 1);
  CHECK_FALSE(p0.get("vis/x").has_value());  // known absent from now on
  p0.put("vis/x", "one");
  p1.put("vis/x", "other partition");
  CHECK(p0.get("vis/x") == "one");
  cache.set_offset({"t", 0}, 42);
  cache.commit();
  CHECK(p0.get("vis/x") == "one");
  CHECK(p1.get("vis/x") == "other partition");
  CHECK(cache.offset({"t", 0}) == 42);
  // Committed, but not on disk before a checkpoint: neither the value nor the offset.
  CHECK_FALSE(state.get(partition_prefix(0) + "vis/x").has_value());
  CHECK_FALSE(state.offset({"t", 0}).has_value());

  p0.put("vis/x", "two");
  p0.put("vis/new", "n");
  p1.erase("vis/x");
  cache.set_offset({"t", 0}, 99);
  std::string out;
  CHECK(p0.read("vis/x", out));
  CHECK(out == "two");
  cache.discard();  // an aborted batch leaves the committed values and offsets
  CHECK(p0.get("vis/x") == "one");
  CHECK(p1.get("vis/x") == "other partition");
  CHECK_FALSE(p0.get("vis/new").has_value());
  CHECK(cache.offset({"t", 0}) == 42);

  cache.checkpoint(true);
  CHECK(state.get(partition_prefix(0) + "vis/x") == "one");
  CHECK(state.get(partition_prefix(1) + "vis/x") == "other partition");
  CHECK_FALSE(state.get(partition_prefix(0) + "vis/new").has_value());
  CHECK(state.offset({"t", 0}) == 42);

  p0.erase("vis/x");
  CHECK_FALSE(p0.get("vis/x").has_value());
  cache.commit();
  cache.checkpoint(true);
  CHECK_FALSE(p0.get("vis/x").has_value());
  CHECK_FALSE(state.get(partition_prefix(0) + "vis/x").has_value());
}

TEST_CASE("a discarded write to a key never read before leaves the database's value") {
  TempDir dir;
  RocksState state(dir.path.string());
  {
    StateCache cache(state);
    PartitionStore p(cache, 2);
    p.put("k", "on disk");
    cache.commit();
    cache.checkpoint(true);
  }
  StateCache cache(state);  // a new cache: "k" is unknown to it
  PartitionStore p(cache, 2);
  p.put("k", "staged");
  cache.discard();
  CHECK(p.get("k") == "on disk");
}

TEST_CASE("keys() merges the database with committed and staged changes") {
  TempDir dir;
  RocksState state(dir.path.string());
  StateCache cache(state);
  PartitionStore p(cache, 0);
  p.put("idle/a", "");
  p.put("idle/b", "");
  p.put("idle/c", "");
  cache.commit();
  cache.checkpoint(false);  // written in the background: keys() waits for it
  p.erase("idle/b");
  p.put("idle/d", "");
  cache.commit();
  p.put("idle/e", "");
  p.put("other", "");
  CHECK(p.keys("idle/", "idle0") == std::vector<std::string>{"idle/a", "idle/c", "idle/d", "idle/e"});
  cache.discard();
  CHECK(p.keys("idle/", "idle0") == std::vector<std::string>{"idle/a", "idle/c", "idle/d"});
}

TEST_CASE("dropping a partition removes it in memory and on disk, others stay") {
  TempDir dir;
  RocksState state(dir.path.string());
  StateCache cache(state);
  PartitionStore p0(cache, 0);
  PartitionStore p1(cache, 1);
  p0.put("vis/y", "y");
  p1.put("vis/x", "x");
  cache.set_offset({"t", 0}, 50);
  cache.set_offset({"t", 1}, 7);
  cache.commit();
  cache.checkpoint(true);
  p0.put("vis/z", "z");  // committed, not checkpointed
  cache.commit();
  cache.drop_partition(0, {"t"});
  CHECK_FALSE(p0.get("vis/y").has_value());
  CHECK_FALSE(p0.get("vis/z").has_value());
  CHECK_FALSE(cache.offset({"t", 0}).has_value());
  CHECK_FALSE(state.offset({"t", 0}).has_value());
  CHECK(p1.get("vis/x") == "x");
  CHECK(cache.offset({"t", 1}) == 7);
  cache.checkpoint(true);  // nothing of partition 0 comes back
  CHECK_FALSE(state.get(partition_prefix(0) + "vis/z").has_value());
}

TEST_CASE("eviction within a small budget never changes what is read") {
  TempDir dir;
  RocksState state(dir.path.string());
  StateCacheOptions options;
  options.budget_bytes = 60000;  // far less than the data: most entries are evicted
  StateCache cache(state, options);
  PartitionStore p(cache, 4);
  std::mt19937 rng(7);
  std::map<std::string, std::string> truth;
  std::size_t peak = 0;
  for (int batch = 0; batch < 400; ++batch) {
    std::map<std::string, std::string> staged = truth;
    for (int i = 0; i < 50; ++i) {
      const std::string key = "k" + std::to_string(rng() % 4000);
      if (rng() % 5 == 0) {
        p.erase(key);
        staged.erase(key);
      } else {
        const std::string value(1 + rng() % 60, static_cast<char>('a' + rng() % 26));
        p.put(key, value);
        staged[key] = value;
      }
    }
    if (rng() % 4 == 0) {
      cache.discard();
    } else {
      cache.commit();
      truth = std::move(staged);
    }
    if (batch % 7 == 0) {
      cache.checkpoint(batch % 2 == 0);
    } else {
      cache.trim();
    }
    for (int i = 0; i < 40; ++i) {
      const std::string key = "k" + std::to_string(rng() % 4000);
      auto it = truth.find(key);
      if (it == truth.end()) {
        REQUIRE_FALSE(p.get(key).has_value());
      } else {
        REQUIRE(p.get(key) == it->second);
      }
    }
    peak = std::max(peak, cache.cached_bytes());
  }
  // 4,000 keys at about 140 bytes each (560 KB) do not fit: eviction kept the cache near its
  // budget (above it by what the last two checkpoint intervals used, which is never evicted, and
  // what accumulates while a checkpoint is being written).
  CHECK(truth.size() > 2000);
  CHECK(peak < 4 * options.budget_bytes);
  cache.checkpoint(true);
  std::vector<std::string> keys;
  for (const auto& [k, v] : truth) keys.push_back(k);
  CHECK(p.keys("k", "l") == keys);
  for (const auto& [k, v] : truth) REQUIRE(p.get(k) == v);
}

TEST_CASE("a cache built from empty keeps no entry for reads of keys never written") {
  TempDir dir;
  RocksState state(dir.path.string());
  StateCache cache(state);
  PartitionStore p(cache, 2);
  p.put("vis/a", "x");
  cache.commit();
  cache.checkpoint(true);
  const auto before = cache.cached_bytes();
  for (int i = 0; i < 10000; ++i) REQUIRE_FALSE(p.get("idn/v:" + std::to_string(i)).has_value());
  // (A false positive of the key filter reads the database and keeps an absent entry: ~1 %.)
  CHECK(cache.cached_bytes() < before + 500 * 150);
  CHECK(p.get("vis/a") == "x");
  p.put("idn/v:7", "written now");  // a key read as absent before can still be written
  CHECK(p.get("idn/v:7") == "written now");
  cache.discard();
  CHECK_FALSE(p.get("idn/v:7").has_value());
}

TEST_CASE("key filter: never forgets a key, rarely claims one it never saw, grows") {
  KeyFilter filter;
  std::mt19937_64 rng(3);
  std::vector<std::size_t> added;
  for (int i = 0; i < 800000; ++i) added.push_back(std::hash<std::string>{}("k" + std::to_string(rng())));
  for (const auto h : added) filter.add(h);
  for (const auto h : added) REQUIRE(filter.may_contain(h));
  std::size_t false_positives = 0;
  for (int i = 0; i < 100000; ++i) {
    false_positives += filter.may_contain(std::hash<std::string>{}("other" + std::to_string(rng())));
  }
  CHECK(false_positives < 3000);  // under 3 % (about 1 % expected)
  CHECK(filter.bytes() > (1u << 20));  // it grew past its first level
}

TEST_CASE("caches sharing a budget: a busy one may use what an idle one does not, together they "
          "keep to it") {
  TempDir dir;
  RocksState state(dir.path.string());
  StateCacheOptions options;
  options.budget_bytes = 60000;
  options.shared_bytes = std::make_shared<std::atomic<std::size_t>>(0);
  StateCache a(state, options), b(state, options);
  PartitionStore pa(a, 4), pb(b, 5);
  std::mt19937 rng(11);
  // One batch of 50 writes to `p`, committed and checkpointed (which evicts what is over).
  auto batch = [&](StateCache& cache, PartitionStore& p) {
    for (int i = 0; i < 50; ++i) {
      p.put("k" + std::to_string(rng() % 4000), std::string(1 + rng() % 60, 'v'));
    }
    cache.commit();
    cache.checkpoint(true);
  };
  for (int i = 0; i < 200; ++i) batch(a, pa);
  // Alone, `a` keeps about 7/8 of the whole budget (not half of it), and the counter is exact.
  CHECK(a.cached_bytes() > 45000);
  CHECK(a.cached_bytes() < 70000);
  CHECK(options.shared_bytes->load() == a.cached_bytes() + b.cached_bytes());
  for (int i = 0; i < 200; ++i) {
    batch(b, pb);
    a.trim();
  }
  // Both busy in turn: together near the budget, each with a share.
  CHECK(b.cached_bytes() > 15000);
  CHECK(a.cached_bytes() + b.cached_bytes() < 70000);
  CHECK(options.shared_bytes->load() == a.cached_bytes() + b.cached_bytes());
}

TEST_CASE("state survives reopening after a checkpoint, and only then") {
  // Checkpoints through the WAL (small ones) and ingested as a table file (large ones).
  const std::size_t ingest_bytes = GENERATE(std::size_t{16} << 20, std::size_t{0});
  INFO("checkpoint_ingest_bytes " << ingest_bytes);
  TempDir dir;
  {
    RocksState state(dir.path.string());
    StateCache cache(state, StateCacheOptions{.checkpoint_ingest_bytes = ingest_bytes});
    {
      // On disk before: overwritten and deleted by the checkpoint below.
      PartitionStore p(cache, 3);
      p.put("pay/b", "on disk");
      p.put("pay/z", "on disk, deleted");
      cache.set_offset({"t", 3}, 5);
      cache.commit();
      cache.checkpoint(true);
      p.erase("pay/z");
    }
    PartitionStore p(cache, 3);
    p.put("pay/a", "paid");
    p.put("pay/b", "gone");
    cache.set_offset({"t", 3}, 10);
    cache.commit();
    p.erase("pay/b");
    cache.set_offset({"t", 3}, 11);
    cache.commit();
    cache.checkpoint(false);
    p.put("pay/c", "after the checkpoint");
    cache.set_offset({"t", 3}, 12);
    cache.commit();  // never checkpointed: as if the process died here
  }
  RocksState state(dir.path.string());
  StateCache cache(state);
  PartitionStore p(cache, 3);
  CHECK(p.get("pay/a") == "paid");
  CHECK_FALSE(p.get("pay/b").has_value());
  CHECK_FALSE(p.get("pay/c").has_value());
  CHECK_FALSE(p.get("pay/z").has_value());
  CHECK(cache.offset({"t", 3}) == 11);
  CHECK(p.keys("pay/", "pay0") == std::vector<std::string>{"pay/a"});
}

TEST_CASE("dirty bytes are what the next checkpoint writes: each changed key once") {
  TempDir dir;
  RocksState state(dir.path.string());
  StateCache cache(state);
  PartitionStore p0(cache, 0);
  const std::string key = partition_prefix(0) + "vis/x";  // the cache's key for p0's "vis/x"
  CHECK(cache.dirty_bytes() == 0);
  p0.put("vis/x", std::string(100, 'a'));
  CHECK(cache.dirty_bytes() == key.size() + 100);
  // Rewritten in the same batch and the next: still one key and its latest value.
  p0.put("vis/x", std::string(150, 'b'));
  cache.commit();
  p0.put("vis/x", std::string(120, 'c'));
  CHECK(cache.dirty_bytes() == key.size() + 120);
  p0.erase("vis/x");
  CHECK(cache.dirty_bytes() == key.size());
  p0.put("vis/y", "1");
  CHECK(cache.dirty_bytes() == 2 * key.size() + 1);
  cache.commit();
  cache.checkpoint(true);
  CHECK(cache.dirty_bytes() == 0);
  // After a checkpoint a rewrite counts in full again.
  p0.put("vis/y", "22");
  CHECK(cache.dirty_bytes() == key.size() + 2);
  // A rollback may leave it above what is dirty, never below.
  cache.discard();
  p0.put("vis/x", "333");
  CHECK(cache.dirty_bytes() >= key.size() + 3);
  cache.commit();
}

TEST_CASE("a large checkpoint is ingested as one table file, a small one is not") {
  TempDir dir;
  RocksState state(dir.path.string());
  const auto live_files = [&] {
    std::vector<rocksdb::LiveFileMetaData> files;
    state.db().GetLiveFilesMetaData(&files);
    return files.size();
  };
  StateCache cache(state, StateCacheOptions{.checkpoint_ingest_bytes = 1u << 20});
  PartitionStore p(cache, 0);
  p.put("small", "x");
  cache.commit();
  cache.checkpoint(true);
  CHECK(live_files() == 0);  // in the memtable (through the WAL)
  const std::string value(100, 'v');
  for (int i = 0; i < 20000; ++i) p.put("big/" + std::to_string(i), value);
  cache.set_offset({"t", 0}, 20000);
  cache.commit();
  cache.checkpoint(true);
  CHECK(live_files() == 1);
  CHECK(state.get(partition_prefix(0) + "big/19999") == value);
  CHECK(state.get(partition_prefix(0) + "small") == "x");
  CHECK(state.offset({"t", 0}) == 20000);

  // Two caches (processing threads) ingest at the same time, each its own file.
  StateCache other(state, StateCacheOptions{.checkpoint_ingest_bytes = 1u << 20});
  PartitionStore p1(other, 1);
  for (int i = 0; i < 100000; ++i) {  // large enough for the two writes to overlap in time
    p.put("big/" + std::to_string(i), "zero" + value);
    p1.put("big/" + std::to_string(i), "one" + value);
  }
  cache.commit();
  other.commit();
  cache.checkpoint(false);
  other.checkpoint(false);
  cache.checkpoint(true);  // waits for the write of the one before
  other.checkpoint(true);
  CHECK(std::filesystem::is_empty(dir.path / "ingest"));  // each file moved into the database
  for (const int i : {0, 7777, 99999}) {
    CHECK(state.get(partition_prefix(0) + "big/" + std::to_string(i)) == "zero" + value);
    CHECK(state.get(partition_prefix(1) + "big/" + std::to_string(i)) == "one" + value);
  }
}

TEST_CASE("state properties survive erase_all, which drops every key and offset") {
  TempDir dir;
  RocksState state(dir.path.string());
  CHECK_FALSE(state.meta("generation").has_value());
  state.set_meta("generation", "3");
  {
    StateCache cache(state);
    PartitionStore p(cache, 1);
    p.put("vis/a", "x");
    cache.set_offset({"t", 1}, 9);
    cache.commit();
    cache.checkpoint(true);
  }
  CHECK(state.get(partition_prefix(1) + "vis/a") == "x");
  state.erase_all();
  CHECK_FALSE(state.get(partition_prefix(1) + "vis/a").has_value());
  CHECK_FALSE(state.offset({"t", 1}).has_value());
  CHECK(state.keys("", "\xff").empty());
  CHECK(state.meta("generation") == "3");
}

}  // namespace revtrace::processor
