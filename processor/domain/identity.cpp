#include "processor/domain/identity.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "processor/domain/codec.hpp"
#include "processor/domain/stripe_event.hpp"

namespace revtrace::domain {

namespace {

constexpr char kRoot = 'R';
constexpr char kPointer = 'P';
constexpr std::uint64_t kRootFormat = 1;
constexpr int kMaxPath = 128;  // union by size bounds depth by log2(nodes)

[[noreturn]] void corrupt(std::string_view key) {
  throw std::runtime_error("revtrace::domain: corrupt identity state at key " + std::string(key));
}

// The members a node contributes on its own.
IdentityGraph::Members own_members(std::string_view node) {
  IdentityGraph::Members m;
  if (node.starts_with("v:")) {
    m.visitors.emplace(node.substr(2));
  } else if (node.starts_with("x:") && payment_id_kind(node.substr(2)) != PaymentIdKind::other) {
    m.payments.emplace(node.substr(2));
  }
  return m;
}

}  // namespace

IdentityGraph::IdentityGraph(StateStore& store, std::string scope)
    : store_(store), scope_(std::move(scope)) {}

std::string IdentityGraph::node_key(std::string_view node) const {
  std::string k = "idn/";
  k += scope_;
  k += '/';
  k += node;
  return k;
}

std::uint64_t IdentityGraph::component_size(std::string_view node) const {
  const auto root = find(node);
  return root ? root->size : 0;
}

void IdentityGraph::erase_component(const std::vector<std::string>& nodes) {
  for (const auto& n : nodes) store_.erase(node_key(n));
}

std::optional<IdentityGraph::Root> IdentityGraph::find(std::string_view node) const {
  std::string current(node);
  for (int i = 0; i < kMaxPath; ++i) {
    const auto key = node_key(current);
    const auto v = store_.get(key);
    if (!v) {
      if (i == 0) return std::nullopt;
      corrupt(key);
    }
    if (v->empty()) corrupt(key);
    if ((*v)[0] == kPointer) {
      current = v->substr(1);
      continue;
    }
    if ((*v)[0] != kRoot) corrupt(key);
    codec::Reader r(std::string_view(*v).substr(1));
    Root root;
    root.name = current;
    if (r.u64() != kRootFormat) corrupt(key);
    root.size = r.u64();
    root.members.visitors = r.strings();
    root.members.payments = r.strings();
    if (!r.ok() || !r.done()) corrupt(key);
    return root;
  }
  corrupt(node_key(node));
}

void IdentityGraph::write_root(const Root& root) {
  codec::Writer w;
  w.u64(kRootFormat);
  w.u64(root.size);
  w.strings(root.members.visitors);
  w.strings(root.members.payments);
  store_.put(node_key(root.name), std::string(1, kRoot) + w.bytes());
}

std::set<std::string> IdentityGraph::link(const std::vector<std::string>& nodes) {
  std::map<std::string, Root> roots;  // distinct existing roots, by name
  std::vector<std::string> fresh;
  for (const auto& n : nodes) {
    if (auto r = find(n)) {
      roots.emplace(r->name, std::move(*r));
    } else if (std::find(fresh.begin(), fresh.end(), n) == fresh.end()) {
      fresh.push_back(n);
    }
  }
  if (fresh.empty() && roots.size() <= 1) return {};

  // The biggest component absorbs the others (ties: the smaller name), keeping paths short.
  Root merged;
  const Root* biggest = nullptr;
  for (const auto& [name, r] : roots) {
    if (!biggest || r.size > biggest->size) biggest = &r;
  }
  merged.name = biggest ? biggest->name : fresh.front();
  merged.size = 0;
  for (const auto& [name, r] : roots) {
    merged.size += r.size;
    merged.members.visitors.insert(r.members.visitors.begin(), r.members.visitors.end());
    merged.members.payments.insert(r.members.payments.begin(), r.members.payments.end());
  }
  for (const auto& n : fresh) {
    ++merged.size;
    auto own = own_members(n);
    merged.members.visitors.insert(own.visitors.begin(), own.visitors.end());
    merged.members.payments.insert(own.payments.begin(), own.payments.end());
  }

  // Payments whose component now has visitors it did not have before. (A fresh payment node's
  // own payment is recomputed by whoever added it.)
  std::set<std::string> affected;
  for (const auto& [name, r] : roots) {
    if (r.members.visitors != merged.members.visitors) {
      affected.insert(r.members.payments.begin(), r.members.payments.end());
    }
  }

  write_root(merged);
  const std::string pointer = std::string(1, kPointer) + merged.name;
  for (const auto& [name, r] : roots) {
    if (name != merged.name) store_.put(node_key(name), pointer);
  }
  for (const auto& n : fresh) {
    if (n != merged.name) store_.put(node_key(n), pointer);
  }
  return affected;
}

IdentityGraph::Members IdentityGraph::members(std::string_view node) const {
  auto r = find(node);
  if (!r) return {};
  return std::move(r->members);
}

}  // namespace revtrace::domain
