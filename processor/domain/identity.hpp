#pragma once
// IdentityGraph — who is who, across devices and Stripe objects.
//
// Nodes are visitors ("v:<visitor_id>"), keyed email hashes ("e:<hex>"), pixel sessions
// ("s:<session_id>") and Stripe objects ("x:<id>": customers, subscriptions and payment objects).
// Edges come from evidence: an identify (visitor-email), a checkout redirect (visitor-session),
// Stripe metadata or client_reference_id (payment-visitor), and Stripe's own links
// (payment-customer, payment-email, payment-subscription). A connected component is one person
// (or household): a payment's visitors are the visitors of its component, and their touches are
// merged. Components only ever grow, so membership after a set of edges is independent of the
// order the edges arrived in.
//
// Stored as a union-find in the state store (union by size, so paths stay O(log n) without
// rewrites on read). Each root keeps its component's visitors and payment ids, so "which
// payments does this visitor affect?" and "which visitors paid this?" are one lookup each.
// One graph is one site in one mode: Stripe-derived edges of test mode never reach live payments;
// web evidence (identify, redirect) is added to both.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "processor/domain/state_store.hpp"

namespace revtrace::domain {

class IdentityGraph {
 public:
  // `scope` is "<site>/<mode>"; state keys are "idn/<scope>/<node>".
  IdentityGraph(StateStore& store, std::string scope);

  static std::string visitor(std::string_view id) { return "v:" + std::string(id); }
  static std::string email(std::string_view hash) { return "e:" + std::string(hash); }
  static std::string session(std::string_view id) { return "s:" + std::string(id); }
  static std::string stripe(std::string_view id) { return "x:" + std::string(id); }

  struct Members {
    std::set<std::string> visitors;  // visitor ids (without the "v:" prefix)
    std::set<std::string> payments;  // payment object ids (cs_, pi_, ch_/py_, in_, inpay_)
  };
  // Joins all `nodes` into one component. Returns the payment ids whose component gained
  // visitors (their attribution may change); empty when nothing that matters changed.
  std::set<std::string> link(const std::vector<std::string>& nodes);
  // The component of `node` (empty when the node is unknown).
  [[nodiscard]] Members members(std::string_view node) const;
  // Number of nodes in the component of `node`; 0 when the node is unknown.
  [[nodiscard]] std::uint64_t component_size(std::string_view node) const;
  // Removes `nodes`, which must be a whole component (every node of it, nothing else): used only
  // to expire an anonymous visitor with its pixel sessions (ENGINE.md, "Bounds").
  void erase_component(const std::vector<std::string>& nodes);

 private:
  struct Root {
    std::string name;
    std::uint64_t size = 1;  // nodes in the component
    Members members;
  };
  [[nodiscard]] std::string node_key(std::string_view node) const;
  [[nodiscard]] std::optional<Root> find(std::string_view node) const;
  void write_root(const Root& r);
  StateStore& store_;
  std::string scope_;
};

}  // namespace revtrace::domain
