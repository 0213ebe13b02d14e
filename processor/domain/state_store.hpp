#pragma once
// The attribution engine's only view of persistent state. The processor backs it with RocksDB
// (processor/state_store.hpp: writes of a batch are staged and committed atomically with the
// input offsets they reflect); tests and tools use MemoryStateStore. The interface is a plain
// ordered key-value map on purpose: point reads and writes, and one ordered key scan (for the
// idle-visitor index), no transactions, so any store can back it and the engine's behaviour
// depends only on the values it reads back.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace revtrace::domain {

class StateStore {
 public:
  virtual ~StateStore() = default;
  // The value last put for `key`, or nullopt when absent (never put, or erased).
  [[nodiscard]] virtual std::optional<std::string> get(std::string_view key) const = 0;
  // The same into `out` (reusing its capacity): true when present. Hot paths read this way.
  virtual bool read(std::string_view key, std::string& out) const {
    auto v = get(key);
    if (!v) return false;
    out = std::move(*v);
    return true;
  }
  virtual void put(std::string_view key, std::string_view value) = 0;
  virtual void erase(std::string_view key) = 0;
  // Every key k with begin <= k < end (byte order), ascending, as the writes so far left them
  // (a store that stages writes includes its staged puts and excludes its staged erases).
  [[nodiscard]] virtual std::vector<std::string> keys(std::string_view begin,
                                                      std::string_view end) const = 0;
};

// An ordered in-memory map: for tests and tools. Not thread-safe (neither is the engine).
class MemoryStateStore final : public StateStore {
 public:
  [[nodiscard]] std::optional<std::string> get(std::string_view key) const override;
  void put(std::string_view key, std::string_view value) override;
  void erase(std::string_view key) override;
  [[nodiscard]] std::vector<std::string> keys(std::string_view begin,
                                              std::string_view end) const override;

  [[nodiscard]] std::size_t size() const noexcept { return map_.size(); }
  // Total bytes of keys and values: lets tests assert that state stays bounded.
  [[nodiscard]] std::size_t bytes() const noexcept;
  [[nodiscard]] const std::map<std::string, std::string, std::less<>>& entries() const noexcept {
    return map_;
  }

 private:
  std::map<std::string, std::string, std::less<>> map_;
};

}  // namespace revtrace::domain
