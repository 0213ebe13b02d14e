#include "processor/domain/ledger.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "processor/domain/hashing.hpp"

namespace revtrace::domain {

namespace {

constexpr char kRoot = 'R';
constexpr char kPointer = 'P';
// 2: + inputs and latest (order-free revisions).
constexpr std::uint64_t kFactsFormat = 2;
constexpr std::uint64_t kSubscriptionFormat = 1;
// Union-find paths in a payment are a handful of ids long; a longer one means corrupt state.
constexpr int kMaxPath = 64;

[[noreturn]] void corrupt(std::string_view key) {
  throw std::runtime_error("revtrace::domain: corrupt state value at key " + std::string(key));
}

PaymentFacts decode_facts(std::string_view bytes, std::string_view key) {
  codec::Reader r(bytes);
  if (r.u64() != kFactsFormat) corrupt(key);
  PaymentFacts f;
  const auto n = r.count();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    auto o = decode_observation(r);
    f.objects.emplace(o.id, std::move(o));
  }
  f.inputs = r.strings();
  f.latest = r.i64();
  if (!r.ok() || !r.done()) corrupt(key);
  return f;
}

void encode_subscription(codec::Writer& w, const SubscriptionFacts& s) {
  w.u64(kSubscriptionFormat);
  for (const auto* set : {&s.first_invoices, &s.first_sessions, &s.invoices, &s.visitor_ids,
                          &s.session_ids, &s.customers}) {
    w.strings(*set);
  }
}

// The smallest id of `kind` among `ids` (sorted), or "".
std::string first_of(const std::set<std::string>& ids, PaymentIdKind kind) {
  for (const auto& id : ids) {
    if (payment_id_kind(id) == kind) return id;
  }
  return {};
}

std::set<std::string> all_payment_ids(const PaymentFacts& f) {
  std::set<std::string> ids;
  for (const auto& [id, o] : f.objects) {
    for (auto& x : o.payment_ids()) ids.insert(std::move(x));
  }
  return ids;
}

}  // namespace

void merge(PaymentFacts& into, const PaymentFacts& from) {
  for (const auto& [id, o] : from.objects) merge(into.objects[id], o);
  into.inputs.insert(from.inputs.begin(), from.inputs.end());
  into.latest = std::max(into.latest, from.latest);
}

std::string encode(const PaymentFacts& f) {
  codec::Writer w;
  w.u64(kFactsFormat);
  w.u64(f.objects.size());
  for (const auto& [id, o] : f.objects) encode(w, o);
  w.strings(f.inputs);
  w.i64(f.latest);
  return w.take();
}

std::string canonical_payment_key(const PaymentFacts& f) {
  const auto ids = all_payment_ids(f);
  for (const auto kind :
       {PaymentIdKind::invoice, PaymentIdKind::payment_intent, PaymentIdKind::charge,
        PaymentIdKind::checkout_session, PaymentIdKind::invoice_payment}) {
    if (auto id = first_of(ids, kind); !id.empty()) return id;
  }
  return f.objects.empty() ? std::string() : f.objects.begin()->first;
}

PaymentSummary summarize(const PaymentFacts& f) {
  PaymentSummary s;
  s.payment_ids = all_payment_ids(f);
  s.key = canonical_payment_key(f);
  s.checkout_session = first_of(s.payment_ids, PaymentIdKind::checkout_session);
  s.payment_intent = first_of(s.payment_ids, PaymentIdKind::payment_intent);
  s.charge = first_of(s.payment_ids, PaymentIdKind::charge);
  s.invoice = first_of(s.payment_ids, PaymentIdKind::invoice);

  // Amount and currency: from the most direct record of money moved that succeeded — charges
  // (summed, if a payment has several), else the payment intent, the invoice, the invoice
  // payment, the checkout session. A fixed priority, so the answer does not depend on which
  // event came first.
  bool amount_set = false;
  for (const auto kind : {ObjectKind::charge, ObjectKind::payment_intent, ObjectKind::invoice,
                          ObjectKind::invoice_payment, ObjectKind::checkout_session}) {
    if (amount_set) break;
    for (const auto& [id, o] : f.objects) {
      if (o.kind != kind || o.state != PayState::succeeded) continue;
      if (!amount_set) {
        s.currency = o.currency;
        amount_set = true;
      }
      if (o.currency == s.currency) s.amount += o.amount;
    }
  }

  Millis earliest_seen = 0;
  std::map<int, std::string> email_by_rank;
  for (const auto& [id, o] : f.objects) {
    if (o.state == PayState::succeeded) {
      s.succeeded = true;
      if (o.paid_at != 0 && (s.paid_at == 0 || o.paid_at < s.paid_at)) s.paid_at = o.paid_at;
    }
    for (const Millis t : {o.paid_at, o.created}) {
      if (t != 0 && (earliest_seen == 0 || t < earliest_seen)) earliest_seen = t;
    }
    if (o.kind == ObjectKind::charge) s.refunded += o.amount_refunded;
    if (!o.customer.empty()) s.customers.insert(o.customer);
    if (!o.subscription.empty()) {
      s.subscriptions.insert(o.subscription);
      if (s.subscription.empty() || o.subscription < s.subscription) {
        s.subscription = o.subscription;
      }
    }
    if (!o.payment_link.empty() && (s.payment_link.empty() || o.payment_link < s.payment_link)) {
      s.payment_link = o.payment_link;
    }
    s.email_hashes.insert(o.email_hashes.begin(), o.email_hashes.end());
    if (!o.email_hashes.empty()) {
      const int rank = o.kind == ObjectKind::checkout_session ? 0
                       : o.kind == ObjectKind::invoice        ? 1
                       : o.kind == ObjectKind::charge         ? 2
                                                              : 3;
      auto [it, inserted] = email_by_rank.emplace(rank, *o.email_hashes.begin());
      if (!inserted && *o.email_hashes.begin() < it->second) it->second = *o.email_hashes.begin();
    }
    s.visitor_ids.insert(o.visitor_ids.begin(), o.visitor_ids.end());
    s.session_ids.insert(o.session_ids.begin(), o.session_ids.end());
    if (o.kind == ObjectKind::checkout_session) {
      if (!o.client_reference_id.empty()) s.client_reference_ids.insert(o.client_reference_id);
      if (o.mode == "subscription") s.subscription_checkout = true;
    }
    // Campaign of a Payment Link: read from a checkout session made by a link, or from any
    // object carrying a revtrace link's metadata (payment intent, invoice subscription snapshot).
    if (!o.campaign.empty()) {
      for (const auto& [k, v] : o.campaign) {
        auto [it, inserted] = s.campaign.emplace(k, v);
        if (!inserted && v < it->second) it->second = v;
      }
      const Millis at = o.created != 0 ? o.created : o.paid_at;
      if (at != 0 && (s.campaign_at == 0 || at < s.campaign_at)) s.campaign_at = at;
    }
    if (o.kind == ObjectKind::invoice && !o.billing_reason.empty() &&
        (s.billing_reason.empty() || o.billing_reason < s.billing_reason)) {
      s.billing_reason = o.billing_reason;
    }
  }
  if (!s.succeeded) s.paid_at = earliest_seen;
  if (s.refunded > s.amount) s.refunded = s.amount;
  if (s.refunded < 0) s.refunded = 0;
  if (!s.customers.empty()) s.customer = *s.customers.begin();
  if (!email_by_rank.empty()) s.email_hash = email_by_rank.begin()->second;
  if (s.campaign_at == 0) s.campaign_at = s.paid_at;
  s.inputs = f.inputs;
  s.earliest = earliest_seen;
  s.latest = std::max(f.latest, s.paid_at);
  return s;
}

PaymentLedger::PaymentLedger(StateStore& store, std::string scope)
    : store_(store), scope_(std::move(scope)) {}

std::string PaymentLedger::node_key(std::string_view id) const {
  std::string k = "pay/";
  k += scope_;
  k += '/';
  k += id;
  return k;
}

std::optional<std::string> PaymentLedger::find(std::string_view id) const {
  std::string current(id);
  for (int i = 0; i < kMaxPath; ++i) {
    const auto key = node_key(current);
    const auto v = store_.get(key);
    if (!v) {
      if (i == 0) return std::nullopt;
      corrupt(key);  // a pointer to a missing node
    }
    if (v->empty()) corrupt(key);
    if ((*v)[0] == kRoot) return current;
    if ((*v)[0] != kPointer) corrupt(key);
    current = v->substr(1);
  }
  corrupt(node_key(id));
}

PaymentFacts PaymentLedger::facts(std::string_view root) const {
  const auto key = node_key(root);
  const auto v = store_.get(key);
  if (!v) return {};
  if (v->empty() || (*v)[0] != kRoot) corrupt(key);
  return decode_facts(std::string_view(*v).substr(1), key);
}

PaymentLedger::Applied PaymentLedger::apply(const Observation& o) {
  const auto ids = o.payment_ids();
  if (ids.empty()) return {};
  std::set<std::string> roots;
  std::vector<std::string> missing;
  for (const auto& id : ids) {
    if (auto r = find(id)) {
      roots.insert(*r);
    } else {
      missing.push_back(id);
    }
  }
  PaymentFacts merged;
  std::string before;
  for (const auto& r : roots) {
    auto f = facts(r);
    if (roots.size() == 1) before = encode(f);
    merge(merged, f);
  }
  merge(merged.objects[o.id], o);
  {
    codec::Writer w;
    encode(w, o);
    merged.inputs.insert(sha256(w.bytes()).substr(0, 16));
  }
  merged.latest = std::max({merged.latest, o.paid_at, o.created});
  Applied result;
  result.root = roots.empty() ? *std::min_element(ids.begin(), ids.end()) : *roots.begin();
  const auto after = encode(merged);
  result.changed = roots.size() != 1 || !missing.empty() || after != before;
  if (!result.changed) return result;
  store_.put(node_key(result.root), std::string(1, kRoot) + after);
  const std::string pointer = std::string(1, kPointer) + result.root;
  for (const auto& r : roots) {
    if (r != result.root) store_.put(node_key(r), pointer);
  }
  for (const auto& id : missing) {
    if (id != result.root) store_.put(node_key(id), pointer);
  }
  return result;
}

SubscriptionFacts PaymentLedger::subscription(std::string_view sub_id) const {
  const std::string key = "sub/" + scope_ + "/" + std::string(sub_id);
  const auto v = store_.get(key);
  SubscriptionFacts s;
  if (!v) return s;
  codec::Reader r(*v);
  if (r.u64() != kSubscriptionFormat) corrupt(key);
  for (auto* set : {&s.first_invoices, &s.first_sessions, &s.invoices, &s.visitor_ids,
                    &s.session_ids, &s.customers}) {
    *set = r.strings();
  }
  if (!r.ok() || !r.done()) corrupt(key);
  return s;
}

bool PaymentLedger::add_to_subscription(std::string_view sub_id, const SubscriptionFacts& add) {
  auto s = subscription(sub_id);
  const auto before = s;
  for (auto [into, from] :
       {std::pair{&s.first_invoices, &add.first_invoices},
        std::pair{&s.first_sessions, &add.first_sessions}, std::pair{&s.invoices, &add.invoices},
        std::pair{&s.visitor_ids, &add.visitor_ids}, std::pair{&s.session_ids, &add.session_ids},
        std::pair{&s.customers, &add.customers}}) {
    into->insert(from->begin(), from->end());
  }
  if (s == before) return false;
  codec::Writer w;
  encode_subscription(w, s);
  store_.put("sub/" + scope_ + "/" + std::string(sub_id), w.bytes());
  for (const auto* set : {&add.first_invoices, &add.first_sessions, &add.invoices}) {
    for (const auto& id : *set) {
      auto subs = subscriptions_of(id);
      if (!subs.emplace(sub_id).second) continue;
      codec::Writer iw;
      iw.u64(kSubscriptionFormat);
      iw.strings(subs);
      store_.put(index_key(id), iw.bytes());
    }
  }
  return true;
}

std::string PaymentLedger::index_key(std::string_view id) const {
  return "sid/" + scope_ + "/" + std::string(id);
}

std::set<std::string> PaymentLedger::subscriptions_of(std::string_view id) const {
  const auto key = index_key(id);
  const auto v = store_.get(key);
  if (!v) return {};
  codec::Reader r(*v);
  if (r.u64() != kSubscriptionFormat) corrupt(key);
  auto subs = r.strings();
  if (!r.ok() || !r.done()) corrupt(key);
  return subs;
}

}  // namespace revtrace::domain
