#include "processor/domain/engine.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <set>
#include <stdexcept>
#include <tuple>

#include "processor/domain/channels.hpp"
#include "processor/domain/codec.hpp"
#include "processor/domain/hashing.hpp"
#include "processor/domain/identity.hpp"
#include "processor/domain/json_read.hpp"
#include "processor/domain/ledger.hpp"
#include "processor/domain/revenue_record.hpp"
#include "processor/domain/stripe_event.hpp"
#include "processor/domain/visitors.hpp"

namespace revtrace::domain {

namespace {

constexpr std::string_view kModes[] = {"live", "test"};
constexpr std::uint64_t kOutputFormat = 1;
constexpr std::uint64_t kRedirectFormat = 1;

[[noreturn]] void corrupt(const std::string& key) {
  throw std::runtime_error("revtrace::domain: corrupt state value at key " + key);
}
// Client clocks (occurred_at) below this are not milliseconds (a seconds mix-up): the gateway's
// received_at is used instead.
constexpr Millis kMinMillis = 1'000'000'000'000;

bool valid_site_id(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

Outcome invalid(std::string reason) {
  Outcome o;
  o.kind = Outcome::Kind::invalid;
  o.reason = std::move(reason);
  return o;
}

Outcome skipped(std::string reason, Outcome::Skip why = Outcome::Skip::duplicate) {
  Outcome o;
  o.kind = Outcome::Kind::skipped;
  o.skip = why;
  o.reason = std::move(reason);
  return o;
}

// Idle-visitor expiry (ENGINE.md, "Bounds"): per-topic event-time watermarks of this store's
// scope, the last day swept, sites with indexed visitors, and visitors by the day they were last
// seen ("idle/<site>/<day>/<visitor>", days zero-padded so byte order is time order).
constexpr Millis kDay = 86'400'000;
constexpr std::string_view kSweptKey = "wm/swept";
constexpr std::string_view kIdleSites = "idlesite/";

// The day of `t` as printf("%08lld") renders it (zero-padded to eight characters, a sign
// included). Written by hand: snprintf was most of an idle-index update (callgrind,
// revtrace_bench engine).
void append_day(std::string& out, Millis t) {
  long long day = t / kDay;
  std::size_t width = 8;
  if (day < 0) {
    out += '-';
    day = -day;
    width = 7;
  }
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof buf, day).ptr;
  const auto digits = static_cast<std::size_t>(end - buf);
  if (digits < width) out.append(width - digits, '0');
  out.append(buf, digits);
}

std::string day_string(Millis t) {
  std::string out;
  append_day(out, t);
  return out;
}

std::string idle_key(std::string_view site, Millis last_seen, std::string_view visitor) {
  std::string k;
  k.reserve(5 + site.size() + 1 + 8 + 1 + visitor.size());
  k += "idle/";
  k += site;
  k += '/';
  append_day(k, last_seen);
  k += '/';
  k += visitor;
  return k;
}

// One element of a payment's revision basis (ENGINE.md, "Revisions"): a kind letter and its
// parts, each length-prefixed so that two different elements never render alike.
std::string basis_element(char kind, std::initializer_list<std::string_view> parts) {
  std::string out(1, kind);
  for (const auto p : parts) {
    out += std::to_string(p.size());
    out += ':';
    out += p;
  }
  return out;
}

auto touch_order(const Touch& t) {
  return std::tie(t.at, t.channel, t.source, t.medium, t.campaign, t.term, t.content, t.click_id,
                  t.referrer, t.landing_path, t.browser, t.os, t.device_class, t.country);
}

// Attribution of one payment before credits: which evidence linked it, to which visitors, and the
// eligible touches (oldest first).
struct Attribution {
  std::string method = "unattributed";
  std::vector<std::string> visitors;
  std::vector<Touch> touches;
  Millis paid_at = 0;  // the payment time the touches and credits are measured against
};

// Per-emission state of one output key: "out/<site>/<payment_key>".
struct OutputState {
  std::int64_t revision = 0;
  std::string content_hash;
  bool retired = false;
};

}  // namespace

struct AttributionEngine::Impl {
  Impl(StateStore& s, std::function<const SiteSettings&(std::string_view)> f)
      : store(s), settings_of(std::move(f)) {}

  StateStore& store;
  std::function<const SiteSettings&(std::string_view)> settings_of;
  simdjson::dom::parser parser;
  simdjson::dom::parser payload_parser;  // a Stripe record's payload (a JSON text in a string)

  // Everything one record's processing needs, for one site.
  struct Site {
    Impl& impl;
    const SiteSettings& settings;
    std::string id;
    VisitorTimelines timelines;
    std::vector<OutputRecord> out;
    std::size_t forced_revisions = 0;

    Site(Impl& i, const SiteSettings& s, std::string site)
        : impl(i), settings(s), id(site), timelines(i.store, site) {}

    std::string scope(std::string_view mode) const { return id + "/" + std::string(mode); }
    PaymentLedger ledger(std::string_view mode) const { return {impl.store, scope(mode)}; }
    IdentityGraph graph(std::string_view mode) const { return {impl.store, scope(mode)}; }

    std::string email_key() const {
      return settings.email_hash_key.empty() ? "revtrace-email:" + id : settings.email_hash_key;
    }

    // --- web evidence shared by both modes ------------------------------------------------------

    // Records that pixel session `session` belongs to `visitor` (so metadata naming the session
    // resolves), once. Returns payments whose component gained visitors, per mode.
    void link_session(std::string_view session, std::string_view visitor,
                      std::map<std::string, std::set<std::string>>& affected) {
      if (session.empty()) return;
      const std::string key = "ses/" + id + "/" + std::string(session);
      if (impl.store.get(key)) return;
      impl.store.put(key, visitor);
      timelines.add_pixel_session(visitor, session);
      for (const auto mode : kModes) {
        // Payments whose metadata names the session now resolve to a visitor (method
        // "metadata") even when that visitor was already in their component.
        auto naming = graph(mode).members(IdentityGraph::session(session)).payments;
        auto a =
            graph(mode).link({IdentityGraph::session(session), IdentityGraph::visitor(visitor)});
        affected[std::string(mode)].merge(a);
        affected[std::string(mode)].merge(naming);
      }
    }

    [[nodiscard]] std::string redirect_key(std::string_view cs) const {
      return "redir/" + id + "/" + std::string(cs);
    }

    [[nodiscard]] std::set<std::string> redirect_visitors(std::string_view cs) const {
      std::set<std::string> out;
      const auto key = redirect_key(cs);
      if (auto v = impl.store.get(key)) {
        codec::Reader r(*v);
        if (r.u64() != kRedirectFormat) corrupt(key);
        out = r.strings();
        if (!r.ok() || !r.done()) corrupt(key);
      }
      return out;
    }

    // --- attribution ----------------------------------------------------------------------------

    // The payment's attribution from its own evidence (and, with `sub`, its subscription's
    // metadata ids). Adds to `basis` every element this result depends on (ENGINE.md,
    // "Revisions"): the payment's distinct observations, resolved metadata sessions, redirects
    // naming its checkout sessions, its component's visitors, and their sessions started within
    // [earliest - lookback, latest] — a window that contains [paid_at - lookback, paid_at] and
    // only widens as facts arrive.
    Attribution own_attribution(std::string_view mode, const PaymentSummary& s,
                                const SubscriptionFacts* sub, std::set<std::string>& basis) const {
      Attribution a;
      a.paid_at = s.paid_at;
      for (const auto& input : s.inputs) basis.insert(basis_element('o', {input}));
      bool resolves = false;
      for (const auto* sessions : {&s.session_ids, sub ? &sub->session_ids : nullptr}) {
        if (sessions == nullptr) continue;
        for (const auto& session : *sessions) {
          if (impl.store.get("ses/" + id + "/" + session).has_value()) {
            resolves = true;
            basis.insert(basis_element('S', {session}));
          }
        }
      }
      const bool metadata =
          !s.visitor_ids.empty() || resolves || (sub && !sub->visitor_ids.empty());
      bool redirect = false;
      for (const auto& pid : s.payment_ids) {
        if (payment_id_kind(pid) != PaymentIdKind::checkout_session) continue;
        for (const auto& v : redirect_visitors(pid)) {
          redirect = true;
          basis.insert(basis_element('r', {pid, v}));
        }
      }
      const bool reference = !s.client_reference_ids.empty();
      const bool link = !s.campaign.empty();

      const auto members = graph(mode).members(IdentityGraph::stripe(s.key));
      // (No time seen at all — never for a real Stripe object: nothing is in the window.)
      const Millis window_start = s.earliest == 0 ? s.latest + 1 : s.earliest - settings.lookback;
      std::vector<Touch> all;
      for (const auto& v : members.visitors) {
        basis.insert(basis_element('v', {v}));
        for (auto& session : timelines.sessions(v)) {
          if (session.touch.at >= window_start && session.touch.at <= s.latest) {
            basis.insert(basis_element('t', {v, std::to_string(session.number)}));
          }
          all.push_back(std::move(session.touch));
        }
      }
      if (link) all.push_back(link_touch(s));
      std::sort(all.begin(), all.end(),
                [](const Touch& x, const Touch& y) { return touch_order(x) < touch_order(y); });
      a.touches = eligible_touches(all, s.paid_at, settings.lookback);
      if (a.touches.empty()) return a;  // unattributed: no visitors listed either

      a.visitors.assign(members.visitors.begin(), members.visitors.end());
      a.method = metadata    ? "metadata"
                 : redirect  ? "checkout_redirect"
                 : reference ? "client_reference_id"
                 : link      ? "payment_link"
                             : "identity_graph";
      return a;
    }

    // The touch a revtrace Payment Link's campaign metadata stands for: credited even when no
    // visit was tracked. Dated when the buyer opened the link (the session's creation).
    Touch link_touch(const PaymentSummary& s) const {
      Touch t;
      t.at = std::min(s.campaign_at, s.paid_at);
      auto get = [&](const char* f) {
        auto it = s.campaign.find(f);
        return it == s.campaign.end() ? std::string() : it->second;
      };
      t.source = get("source");
      t.medium = get("medium");
      t.campaign = get("campaign");
      t.term = get("term");
      t.content = get("content");
      if (t.source.empty()) t.source = "payment_link";
      if (t.medium.empty()) t.medium = "payment_link";
      t.channel = std::string(classify_channel(t));
      return t;
    }

    // Root of the payment that started subscription `sub`, if known.
    std::optional<std::string> first_payment(std::string_view mode,
                                             const SubscriptionFacts& sub) const {
      const auto ledger_ = ledger(mode);
      for (const auto* ids : {&sub.first_invoices, &sub.first_sessions}) {
        for (const auto& id : *ids) {
          if (auto r = ledger_.find(id)) return r;
        }
      }
      return std::nullopt;
    }

    // The payment's attribution, and in `basis` everything it depends on. For a payment of a
    // subscription that is its subscription's facts and every candidate first payment's own
    // basis too, whether or not it inherits now: the set must only grow (ENGINE.md).
    Attribution attribution(std::string_view mode, const std::string& root, const PaymentSummary& s,
                            std::set<std::string>& basis) const {
      if (s.subscription.empty()) return own_attribution(mode, s, nullptr, basis);
      const auto ledger_ = ledger(mode);
      const auto sub = ledger_.subscription(s.subscription);
      const auto first = first_payment(mode, sub);
      auto own = own_attribution(mode, s, &sub, basis);

      // Every subscription the payment's objects name (normally one) contributes, so that the
      // basis cannot shrink should the chosen one (the smallest id) ever change.
      std::optional<Attribution> inherited;
      for (const auto& sub_id : s.subscriptions) {
        const auto facts = sub_id == s.subscription ? sub : ledger_.subscription(sub_id);
        for (const auto& [kind, set] :
             {std::pair{'I', &facts.first_invoices}, std::pair{'C', &facts.first_sessions},
              std::pair{'V', &facts.visitor_ids}, std::pair{'W', &facts.session_ids}}) {
          for (const auto& x : *set) basis.insert(basis_element(kind, {sub_id, x}));
        }
        std::set<std::string> candidates;
        for (const auto* ids : {&facts.first_invoices, &facts.first_sessions}) {
          for (const auto& pid : *ids) {
            if (auto r = ledger_.find(pid); r && *r != root) candidates.insert(*r);
          }
        }
        for (const auto& candidate : candidates) {
          const auto fs = summarize(ledger_.facts(candidate));
          auto a = own_attribution(mode, fs, &facts, basis);
          if (sub_id == s.subscription && first && candidate == *first) inherited = std::move(a);
        }
        if (sub_id != s.subscription) (void)own_attribution(mode, s, &facts, basis);
      }

      const bool is_first = s.billing_reason == "subscription_create" || s.subscription_checkout ||
                            (first && *first == root);
      const bool later_invoice = s.billing_reason == "subscription_cycle" ||
                                 s.billing_reason == "subscription_update" ||
                                 s.billing_reason == "subscription_threshold";
      if (!is_first && inherited && (later_invoice || !s.invoice.empty())) {
        // A renewal: the acquisition's attribution, so channels get the subscription's lifetime
        // value. Credits are re-split over this invoice's amount at the first payment's time.
        // (A first payment dated after this invoice would be inconsistent data; then the
        // invoice stands on its own evidence rather than credit touches that came after it.)
        if (!inherited->touches.empty() && inherited->paid_at <= s.paid_at) {
          inherited->method = "inherited";
          return std::move(*inherited);
        }
      }
      return own;
    }

    // --- output ---------------------------------------------------------------------------------

    OutputState load_output(const std::string& key) const {
      OutputState st;
      const std::string state_key = "out/" + id + "/" + key;
      if (auto v = impl.store.get(state_key)) {
        codec::Reader r(*v);
        if (r.u64() != kOutputFormat) corrupt(state_key);
        st.revision = r.i64();
        st.content_hash = r.str();
        st.retired = r.boolean();
        if (!r.ok() || !r.done()) corrupt(state_key);
      }
      return st;
    }

    void save_output(const std::string& key, const OutputState& st) {
      codec::Writer w;
      w.u64(kOutputFormat);
      w.i64(st.revision);
      w.str(st.content_hash);
      w.boolean(st.retired);
      impl.store.put("out/" + id + "/" + key, w.bytes());
    }

    // Emits `r` under revision `basis_size` (ENGINE.md, "Revisions") when its content or its
    // revision differs from what was last emitted for the key. Emitting on a grown basis with
    // unchanged content is what makes the latest revision independent of the arrival order.
    void publish(const RevenueRecord& r, std::int64_t basis_size) {
      auto st = load_output(r.payment_key);
      auto hash = sha256(render_content(r));
      const bool same = st.revision > 0 && !st.retired && st.content_hash == hash;
      if (same && basis_size <= st.revision) return;
      std::int64_t revision = basis_size;
      if (revision <= st.revision) {
        // New content without a grown basis: a rule was broken (see ENGINE.md, "Known limits").
        // Never reuse a revision number in this history; report it.
        revision = st.revision + 1;
        ++forced_revisions;
      }
      st.revision = revision;
      st.content_hash = std::move(hash);
      st.retired = false;
      save_output(r.payment_key, st);
      out.push_back({id + "/" + r.payment_key, render(r, st.revision), false});
    }

    void retire(const std::string& key) {
      auto st = load_output(key);
      if (st.revision == 0 || st.retired) return;
      st.retired = true;
      save_output(key, st);
      out.push_back({id + "/" + key, std::string(), true});
    }

    void emit(std::string_view mode, const std::string& root) {
      const auto s = summarize(ledger(mode).facts(root));
      for (const auto& pid : s.payment_ids) {
        if (pid != s.key) retire(pid);
      }
      if (!s.is_revenue()) {
        retire(s.key);
        return;
      }
      std::set<std::string> basis;
      auto a = attribution(mode, root, s, basis);
      RevenueRecord r;
      r.site_id = id;
      r.payment_key = s.key;
      r.livemode = mode == "live";
      r.amount = s.amount;
      r.currency = s.currency;
      r.refunded = s.refunded;
      r.paid_at = s.paid_at;
      r.method = a.method;
      r.checkout_session = s.checkout_session;
      r.payment_intent = s.payment_intent;
      r.charge = s.charge;
      r.invoice = s.invoice;
      r.subscription = s.subscription;
      r.customer = s.customer;
      r.payment_link = s.payment_link;
      r.visitor_ids = std::move(a.visitors);
      r.email_hash = s.email_hash;
      r.touches = std::move(a.touches);
      for (std::size_t m = 0; m < kAllModels.size(); ++m) {
        r.credits[m] = r.touches.empty() ? std::vector<std::int64_t>{}
                                         : credit(kAllModels[m], r.touches, s.amount, a.paid_at);
      }
      publish(r, static_cast<std::int64_t>(basis.size()));
    }

    // Recomputes the payments containing `ids` (and every payment of their subscriptions, since
    // renewals inherit from the first). With `touch_at`, only payments whose touch window
    // [earliest - lookback, latest] contains it: a session outside it changes neither a payment's
    // touches nor its revision basis.
    void recompute(std::string_view mode, const std::set<std::string>& ids,
                   std::optional<Millis> touch_at = std::nullopt) {
      const auto ledger_ = ledger(mode);
      std::set<std::string> roots;
      for (const auto& pid : ids) {
        if (auto r = ledger_.find(pid)) roots.insert(*r);
      }
      std::set<std::string> all;
      for (const auto& root : roots) {
        const auto s = summarize(ledger_.facts(root));
        if (touch_at && (*touch_at > s.latest || *touch_at < s.earliest - settings.lookback)) {
          continue;
        }
        all.insert(root);
        auto subs = s.subscriptions;
        for (const auto& pid : s.payment_ids) subs.merge(ledger_.subscriptions_of(pid));
        for (const auto& sub_id : subs) {
          const auto sub = ledger_.subscription(sub_id);
          for (const auto* set : {&sub.first_invoices, &sub.first_sessions, &sub.invoices}) {
            for (const auto& pid : *set) {
              if (auto r = ledger_.find(pid)) all.insert(*r);
            }
          }
        }
      }
      for (const auto& root : all) emit(mode, root);
    }

    void recompute_all(const std::map<std::string, std::set<std::string>>& affected,
                       std::optional<Millis> touch_at = std::nullopt) {
      for (const auto mode : kModes) {
        auto it = affected.find(std::string(mode));
        if (it != affected.end() && !it->second.empty()) recompute(mode, it->second, touch_at);
      }
    }
  };

  const SiteSettings& settings_for(std::string_view site) { return settings_of(site); }

  Outcome web_event(std::string_view json);
  Outcome checkout_redirect(std::string_view json);
  Outcome stripe_event(std::string_view json);

  // --- idle-visitor expiry (ENGINE.md, "Bounds") ------------------------------------------------

  // A time stored as decimal text (read at every pageview: no allocation, no locale).
  [[nodiscard]] std::optional<Millis> read_millis(std::string_view key) const {
    thread_local std::string v;
    if (!store.read(key, v)) return std::nullopt;
    Millis t = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), t);
    if (ec != std::errc() || end != v.data() + v.size()) corrupt(std::string(key));
    return t;
  }

  // `topic`: 'w' web events (touch time), 'r' redirects (received_at), 's' Stripe (created).
  // Returns whether the watermark entered a new day (the only moment a sweep can find work).
  bool advance_watermark(char topic, Millis t) {
    const char key[] = {'w', 'm', '/', topic};
    const std::string_view k(key, sizeof key);
    const auto current = read_millis(k);
    if (current && t <= *current) return false;
    char text[24];
    const auto end = std::to_chars(text, text + sizeof text, t).ptr;
    store.put(k, std::string_view(text, static_cast<std::size_t>(end - text)));
    return !current || t / kDay > *current / kDay;
  }

  // The event time every input topic of this scope has reached: the smallest of their
  // watermarks (a topic without any record yet does not hold it back). None before a pageview.
  [[nodiscard]] std::optional<Millis> watermark() const {
    auto w = read_millis("wm/w");
    if (!w) return std::nullopt;
    for (const char* k : {"wm/r", "wm/s"}) {
      if (auto t = read_millis(k)) w = std::min(*w, *t);
    }
    return w;
  }

  void index_idle(std::string_view site, std::string_view visitor, Millis previous, Millis now) {
    if (previous != 0 && previous / kDay == now / kDay) return;
    if (previous != 0) store.erase(idle_key(site, previous, visitor));
    store.put(idle_key(site, now, visitor), "");
    std::string site_key(kIdleSites);
    site_key += site;
    if (!store.get(site_key)) store.put(site_key, "");
  }

  // Removes an anonymous visitor — its identity component is the visitor and the pixel sessions
  // that first appeared with it, in both modes: no email, no redirect, no Stripe object — with
  // its timeline and sessions. Others (leads, customers) are kept: a payment may be recomputed.
  bool expire_if_anonymous(Site& site, std::string_view visitor, Millis cutoff) {
    const auto facts = site.timelines.expiry_facts(visitor);
    if (!facts.exists || !facts.sessions_complete || facts.last_seen >= cutoff) return false;
    std::vector<std::string> nodes{IdentityGraph::visitor(visitor)};
    for (const auto& session : facts.pixel_sessions) {
      const auto owner = store.get("ses/" + site.id + "/" + session);
      if (!owner || *owner != visitor) return false;
      nodes.push_back(IdentityGraph::session(session));
    }
    for (const auto mode : kModes) {
      const auto graph = site.graph(mode);
      const auto size = graph.component_size(nodes.front());
      if (size == 0 && nodes.size() == 1) continue;  // never linked to anything
      if (size != nodes.size()) return false;
      const auto members = graph.members(nodes.front());
      if (!members.payments.empty() || members.visitors.size() != 1) return false;
    }
    for (const auto mode : kModes) site.graph(mode).erase_component(nodes);
    for (const auto& session : facts.pixel_sessions) store.erase("ses/" + site.id + "/" + session);
    site.timelines.erase(visitor);
    return true;
  }

  // Once per day of watermark: expires, per site, the anonymous visitors last seen more than
  // lookback + idle_margin before the watermark. Returns how many.
  std::size_t sweep_idle_visitors() {
    const auto w = watermark();
    if (!w) return 0;
    const Millis today = *w / kDay;
    if (auto swept = read_millis(kSweptKey); swept && *swept >= today) return 0;
    store.put(kSweptKey, std::to_string(today));
    std::size_t expired = 0;
    std::string sites_end(kIdleSites);
    sites_end.back() = '/' + 1;
    for (const auto& site_key : store.keys(kIdleSites, sites_end)) {
      const std::string site_id = site_key.substr(kIdleSites.size());
      Site site(*this, settings_for(site_id), site_id);
      const Millis cutoff = *w - site.settings.lookback - site.settings.idle_margin;
      if (cutoff <= 0) continue;
      const std::string prefix = "idle/" + site_id + "/";
      // Days strictly before the cutoff's day: everyone there was last seen before the cutoff.
      for (const auto& key : store.keys(prefix, prefix + day_string(cutoff))) {
        const auto visitor = std::string_view(key).substr(prefix.size() + 9);
        if (expire_if_anonymous(site, visitor, cutoff)) ++expired;
        store.erase(key);
      }
    }
    return expired;
  }
};

Outcome AttributionEngine::Impl::web_event(std::string_view json) {
  simdjson::dom::element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root)) {
    return invalid(std::string("web event: invalid JSON: ") + simdjson::error_message(err));
  }
  std::string error;
  json::ObjectReader r(root, "web event", &error);
  if (!r.is_object()) return invalid("web event: record is not a JSON object");
  const auto type = r.required_string("type");
  const auto site_id = r.required_string("site_id");
  const auto visitor = r.required_string("visitor_id");
  const auto event_id = r.required_string("event_id");
  const auto received_at = r.required_int("received_at");
  const auto occurred_at = r.optional_int("occurred_at");
  const auto session_id = r.optional_string("session_id");
  if (!error.empty()) return invalid(error);
  if (!valid_site_id(site_id)) return invalid("web event: site_id must match ^[A-Za-z0-9_-]+$");
  const Millis at = occurred_at && *occurred_at >= kMinMillis ? *occurred_at : *received_at;

  if (type == "pageview") {
    const auto url = r.required_string("url");
    const auto referrer = r.optional_string("referrer");
    auto device = r.optional_object("device");
    const auto browser = device.optional_string("browser");
    const auto os = device.optional_string("os");
    const auto device_class = device.optional_string("device_class");
    const auto country = r.optional_string("country");
    if (!error.empty()) return invalid(error);
    Site site(*this, settings_for(site_id), std::string(site_id));
    Touch touch = extract_touch(
        PageviewFacts{url, referrer, at, browser, os, device_class, country}, site.settings.rules);
    touch.at = at;
    if (touch.channel.empty()) touch.channel = std::string(classify_channel(touch));
    const auto added = site.timelines.add_pageview(visitor, event_id, touch);
    if (added.duplicate) return skipped("duplicate web event " + std::string(event_id));
    index_idle(site_id, visitor, added.previous_last_seen, added.last_seen);
    const bool new_day = advance_watermark('w', at);
    std::map<std::string, std::set<std::string>> affected;
    site.link_session(session_id, visitor, affected);
    site.recompute_all(affected);
    if (added.new_session) {
      // A new touch: payments of this visitor's component made at or after it may change.
      std::map<std::string, std::set<std::string>> mine;
      for (const auto mode : kModes) {
        mine[std::string(mode)] =
            site.graph(mode).members(IdentityGraph::visitor(visitor)).payments;
      }
      site.recompute_all(mine, touch.at);
    }
    Outcome o;
    o.revenue = std::move(site.out);
    o.forced_revisions = site.forced_revisions;
    // Swept when the web watermark enters a new day: the sweep's own check (the smallest
    // watermark's day) is then read only once a day of web time, not at every pageview.
    o.expired_visitors = new_day ? sweep_idle_visitors() : 0;
    return o;
  }
  if (type == "identify") {
    const auto email = r.required_string("email");
    if (!error.empty()) return invalid(error);
    const auto normalised = normalise_email(email);
    if (normalised.empty()) return invalid("web event: field email is blank");
    Site site(*this, settings_for(site_id), std::string(site_id));
    const auto hash = email_hash(site.email_key(), normalised);
    std::map<std::string, std::set<std::string>> affected;
    for (const auto mode : kModes) {
      affected[std::string(mode)] =
          site.graph(mode).link({IdentityGraph::visitor(visitor), IdentityGraph::email(hash)});
    }
    site.link_session(session_id, visitor, affected);
    site.recompute_all(affected);
    Outcome o;
    o.revenue = std::move(site.out);
    o.forced_revisions = site.forced_revisions;
    return o;
  }
  if (type == "custom") {
    (void)r.required_string("name");
    if (!error.empty()) return invalid(error);
    Site site(*this, settings_for(site_id), std::string(site_id));
    std::map<std::string, std::set<std::string>> affected;
    site.link_session(session_id, visitor, affected);
    site.recompute_all(affected);
    Outcome o;
    o.revenue = std::move(site.out);
    o.forced_revisions = site.forced_revisions;
    return o;
  }
  return invalid("web event: unknown type " + std::string(type));
}

Outcome AttributionEngine::Impl::checkout_redirect(std::string_view json) {
  simdjson::dom::element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root)) {
    return invalid(std::string("checkout redirect: invalid JSON: ") + simdjson::error_message(err));
  }
  std::string error;
  json::ObjectReader r(root, "checkout redirect", &error);
  if (!r.is_object()) return invalid("checkout redirect: record is not a JSON object");
  const auto type = r.required_string("type");
  const auto site_id = r.required_string("site_id");
  const auto visitor = r.required_string("visitor_id");
  (void)r.required_string("event_id");
  const auto cs = r.required_string("checkout_session_id");
  const auto received_at = r.required_int("received_at");
  const auto session_id = r.optional_string("session_id");
  if (!error.empty()) return invalid(error);
  if (type != "checkout_redirect")
    return invalid("checkout redirect: type is " + std::string(type) + ", not checkout_redirect");
  if (!valid_site_id(site_id))
    return invalid("checkout redirect: site_id must match ^[A-Za-z0-9_-]+$");
  if (payment_id_kind(cs) != PaymentIdKind::checkout_session) {
    return invalid("checkout redirect: checkout_session_id " + std::string(cs) +
                   " is not a cs_ id");
  }

  (void)advance_watermark('r', *received_at);
  Site site(*this, settings_for(site_id), std::string(site_id));
  auto visitors = site.redirect_visitors(cs);
  const bool fresh = visitors.emplace(visitor).second;
  std::map<std::string, std::set<std::string>> affected;
  if (fresh) {
    codec::Writer w;
    w.u64(kRedirectFormat);
    w.strings(visitors);
    store.put(site.redirect_key(cs), w.bytes());
    for (const auto mode : kModes) {
      affected[std::string(mode)] =
          site.graph(mode).link({IdentityGraph::stripe(cs), IdentityGraph::visitor(visitor)});
      affected[std::string(mode)].emplace(cs);  // the method may upgrade even with no new visitor
    }
  }
  site.link_session(session_id, visitor, affected);
  if (!fresh && affected.empty()) {
    return skipped("duplicate checkout redirect for " + std::string(cs) + " by visitor " +
                   std::string(visitor));
  }
  site.recompute_all(affected);
  Outcome o;
  o.revenue = std::move(site.out);
  o.forced_revisions = site.forced_revisions;
  return o;
}

Outcome AttributionEngine::Impl::stripe_event(std::string_view json) {
  // The site's metadata keys are needed to read the event, but the site is only known from the
  // envelope: its site_id is read first, then the rest of the same parsed record.
  simdjson::dom::element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root)) {
    return invalid(std::string("stripe event: invalid JSON: ") + simdjson::error_message(err));
  }
  std::string site_id;
  {
    std::string error;
    json::ObjectReader r(root, "stripe event", &error);
    if (!r.is_object()) return invalid("stripe event: record is not a JSON object");
    site_id = std::string(r.required_string("site_id"));
    if (!error.empty()) return invalid(error);
  }
  if (!valid_site_id(site_id)) return invalid("stripe event: site_id must match ^[A-Za-z0-9_-]+$");
  Site site(*this, settings_for(site_id), site_id);
  auto parsed = parse_stripe_record(
      root, {site.settings.visitor_id_keys, site.settings.session_id_keys}, payload_parser);
  switch (parsed.kind) {
    case StripeEventParse::Kind::invalid:
      return invalid(std::move(parsed.reason));
    case StripeEventParse::Kind::unused:
      return skipped(std::move(parsed.reason), Outcome::Skip::unused_type);
    case StripeEventParse::Kind::ignored:
      return skipped(std::move(parsed.reason), Outcome::Skip::no_payment);
    case StripeEventParse::Kind::ok:
      break;
  }
  StripeEvent& ev = parsed.event;
  (void)advance_watermark('s', ev.created);
  const std::string_view mode = ev.livemode ? "live" : "test";
  // No per-event marker is kept: a redelivered event, or Stripe's "two events for one change",
  // shows an observation the ledger already holds (PaymentFacts::inputs), links the graph already
  // has and subscription facts already known, so it changes nothing and is skipped below. State
  // therefore grows with payments, not with events.
  Observation& o = ev.object;
  for (const auto& e : ev.emails) o.email_hashes.insert(email_hash(site.email_key(), e));

  auto ledger = site.ledger(mode);
  auto graph = site.graph(mode);
  std::set<std::string> affected;
  bool changed = false;

  // Identity edges this event shows: its payment objects, customer, subscription, emails and any
  // visitor ids (metadata, client_reference_id) are one person.
  std::vector<std::string> nodes;
  const auto pids = o.payment_ids();
  for (const auto& pid : pids) nodes.push_back(IdentityGraph::stripe(pid));
  if (o.kind == ObjectKind::subscription) nodes.push_back(IdentityGraph::stripe(o.id));
  if (!o.subscription.empty()) nodes.push_back(IdentityGraph::stripe(o.subscription));
  if (!o.customer.empty()) nodes.push_back(IdentityGraph::stripe(o.customer));
  for (const auto& h : o.email_hashes) nodes.push_back(IdentityGraph::email(h));
  for (const auto& v : o.visitor_ids) nodes.push_back(IdentityGraph::visitor(v));
  for (const auto& s : o.session_ids) nodes.push_back(IdentityGraph::session(s));
  if (!o.client_reference_id.empty())
    nodes.push_back(IdentityGraph::visitor(o.client_reference_id));

  // What this event tells about a subscription: which invoice / checkout session started it (the
  // payment renewals inherit from), its invoices, and revtrace ids in its metadata (the
  // subscription's own, or the snapshot an invoice carries).
  SubscriptionFacts sub_add;
  std::string sub_id;
  if (o.kind == ObjectKind::subscription) {
    sub_id = o.id;
    if (!o.invoice.empty()) sub_add.first_invoices.insert(o.invoice);  // latest_invoice at creation
    sub_add.visitor_ids = o.visitor_ids;
    sub_add.session_ids = o.session_ids;
  } else {
    const auto applied = ledger.apply(o);
    changed = applied.changed;
    affected.insert(applied.root);
    sub_id = o.subscription;
    if (o.kind == ObjectKind::invoice) {
      sub_add.invoices.insert(o.id);
      if (o.billing_reason == "subscription_create") sub_add.first_invoices.insert(o.id);
      sub_add.visitor_ids = o.visitor_ids;
      sub_add.session_ids = o.session_ids;
    } else if (o.kind == ObjectKind::checkout_session) {
      sub_add.first_sessions.insert(o.id);
      if (!o.invoice.empty()) {
        sub_add.first_invoices.insert(o.invoice);
        sub_add.invoices.insert(o.invoice);
      }
    }
  }
  if (!sub_id.empty()) {
    if (!o.customer.empty()) sub_add.customers.insert(o.customer);
    if (ledger.add_to_subscription(sub_id, sub_add)) {
      // Every payment of the subscription may change: the first one's evidence, and the
      // renewals that inherit from it.
      changed = true;
      const auto sub = ledger.subscription(sub_id);
      for (const auto* set : {&sub.first_invoices, &sub.first_sessions, &sub.invoices}) {
        affected.insert(set->begin(), set->end());
      }
    }
  }
  auto gained = graph.link(nodes);
  if (!gained.empty()) changed = true;
  affected.merge(gained);

  if (!changed) {
    return skipped("duplicate: Stripe event " + ev.event_id + " (" + ev.type + " for " + o.id +
                   ") adds nothing new");
  }
  site.recompute(mode, affected);
  Outcome out;
  out.revenue = std::move(site.out);
  out.forced_revisions = site.forced_revisions;
  return out;
}

AttributionEngine::AttributionEngine(StateStore& store,
                                     std::function<const SiteSettings&(std::string_view)> settings)
    : impl_(std::make_unique<Impl>(store, std::move(settings))) {}

AttributionEngine::~AttributionEngine() = default;

Outcome AttributionEngine::on_web_event(std::string_view record_json) {
  return impl_->web_event(record_json);
}

Outcome AttributionEngine::on_checkout_redirect(std::string_view record_json) {
  return impl_->checkout_redirect(record_json);
}

Outcome AttributionEngine::on_stripe_event(std::string_view record_json) {
  return impl_->stripe_event(record_json);
}

}  // namespace revtrace::domain
