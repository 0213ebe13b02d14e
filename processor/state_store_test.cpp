// The processor's RocksDB state and its read cache: what was committed is what is read back,
// through the cache or not, after erases, partition drops and cache generations turning over.
#include "processor/state_store.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
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

TEST_CASE("read cache: hits, absent entries, generations within the budget") {
  ReadCache cache(2000);  // two generations of 1000 bytes: about 9 small entries each
  CHECK(cache.find("a") == nullptr);
  cache.store("a", std::string("1"));
  cache.store("b", std::nullopt);
  REQUIRE(cache.find("a") != nullptr);
  CHECK(**cache.find("a") == "1");
  REQUIRE(cache.find("b") != nullptr);
  CHECK_FALSE(cache.find("b")->has_value());
  cache.store("a", std::string("2"));
  CHECK(**cache.find("a") == "2");
  // Enough new keys to turn over both generations: the first ones are forgotten, never wrong.
  for (int i = 0; i < 100; ++i) cache.store("k" + std::to_string(i), std::string(10, 'x'));
  CHECK(cache.find("a") == nullptr);
  CHECK(cache.find("k0") == nullptr);
  REQUIRE(cache.find("k99") != nullptr);
  CHECK(**cache.find("k99") == std::string(10, 'x'));
  cache.clear();
  CHECK(cache.find("k99") == nullptr);
}

TEST_CASE("committed state reads back through the cache, staged writes first") {
  TempDir dir;
  RocksState state(dir.path.string());
  StagedStore staged(state);
  PartitionStore p0(staged, 0);
  PartitionStore p1(staged, 1);
  CHECK_FALSE(p0.get("vis/x").has_value());  // cached as absent
  p0.put("vis/x", "one");
  p1.put("vis/x", "other partition");
  CHECK(p0.get("vis/x") == "one");
  staged.set_offset({"t", 0}, 42);
  staged.commit();
  CHECK(p0.get("vis/x") == "one");
  CHECK(p1.get("vis/x") == "other partition");
  CHECK(state.offset({"t", 0}) == 42);

  p0.put("vis/x", "two");
  staged.discard();  // an aborted batch leaves the committed value
  CHECK(p0.get("vis/x") == "one");

  p0.erase("vis/x");
  CHECK_FALSE(p0.get("vis/x").has_value());
  staged.commit();
  CHECK_FALSE(p0.get("vis/x").has_value());
  CHECK_FALSE(state.get(partition_prefix(0) + "vis/x").has_value());

  p0.put("vis/y", "y");
  staged.set_offset({"t", 0}, 50);
  staged.commit();
  drop_partition(state, 0, {"t"});
  CHECK_FALSE(p0.get("vis/y").has_value());
  CHECK_FALSE(state.offset({"t", 0}).has_value());
  CHECK(p1.get("vis/x") == "other partition");
}

TEST_CASE("state survives reopening (the cache is only a mirror)") {
  TempDir dir;
  {
    RocksState state(dir.path.string());
    StagedStore staged(state);
    PartitionStore p(staged, 3);
    p.put("pay/a", "paid");
    p.put("pay/b", "gone");
    staged.commit();
    p.erase("pay/b");
    staged.commit();
  }
  RocksState state(dir.path.string());
  StagedStore staged(state);
  PartitionStore p(staged, 3);
  CHECK(p.get("pay/a") == "paid");
  CHECK_FALSE(p.get("pay/b").has_value());
  CHECK(p.keys("pay/", "pay0") == std::vector<std::string>{"pay/a"});
}

}  // namespace revtrace::processor
