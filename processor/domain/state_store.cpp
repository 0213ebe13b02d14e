#include "processor/domain/state_store.hpp"

namespace revtrace::domain {

std::optional<std::string> MemoryStateStore::get(std::string_view key) const {
  const auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

void MemoryStateStore::put(std::string_view key, std::string_view value) {
  const auto it = map_.find(key);
  if (it == map_.end()) {
    map_.emplace(std::string(key), std::string(value));
  } else {
    it->second.assign(value);
  }
}

void MemoryStateStore::erase(std::string_view key) {
  const auto it = map_.find(key);
  if (it != map_.end()) map_.erase(it);
}

std::vector<std::string> MemoryStateStore::keys(std::string_view begin,
                                                std::string_view end) const {
  std::vector<std::string> out;
  for (auto it = map_.lower_bound(begin); it != map_.end() && it->first < end; ++it) {
    out.push_back(it->first);
  }
  return out;
}

std::size_t MemoryStateStore::bytes() const noexcept {
  std::size_t n = 0;
  for (const auto& [k, v] : map_) n += k.size() + v.size();
  return n;
}

}  // namespace revtrace::domain
