// End to end on a real Kafka broker (issue 5, last acceptance point): a few hundred generated
// visitor journeys over three differently configured sites go through the gateway's HTTP
// endpoints (pageviews, identifies, checkout redirects, signed Stripe webhooks with duplicate
// deliveries, refunds and test-mode payments); one `revtrace processor` attributes them; the
// latest attributed-revenue record of every payment is compared with what this file computes on
// its own from the generated journeys.
//
// The expectation is an independent, deliberately small implementation of the documented rules
// (shared/docs/attribution.md, processor/domain/README.md and ENGINE.md): touch extraction for
// the URLs generated here, the channel rule table, the session rule, the evidence order, the
// lookback window, and the models with largest-remainder rounding (ties to the later touch). It
// shares no code with processor/domain. Time decay, whose weights the engine computes in fixed
// point, is checked as "each credit is the floor or the ceiling of its exact real share, and the
// credits sum to the amount".
#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>
#include <boost/json/src.hpp>  // Boost.JSON header-only, compiled into this test alone

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/test_support.hpp"

using namespace revtrace::testing;
using namespace std::chrono_literals;
namespace bj = boost::json;

namespace {

constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr std::int64_t kDay = 24 * kHour;
constexpr int kJourneysPerSite = 110;
constexpr int kLanes = 4;  // client threads, each with one keep-alive connection

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- sites ---------------------------------------------------------------------------------------

struct Site {
  std::string id;
  std::string host;            // the shop's own host (landing pages)
  std::string secret;          // webhook signing secret
  int lookback_days = 90;      // configured only when not 90
  std::vector<std::string> affiliate_params;  // empty = the default list
  std::string visitor_key = "revtrace_visitor_id";  // metadata key the shop's server writes
  std::string extra_visitor_key;  // configured visitor_id_keys alias (may be empty)
  std::string email_hash_key;     // configured, or "" for the default
  std::string blog_host;          // an own domain besides the shop host

  [[nodiscard]] std::int64_t lookback_ms() const { return lookback_days * kDay; }
  [[nodiscard]] std::vector<std::string> affiliates() const {
    return affiliate_params.empty() ? std::vector<std::string>{"ref", "via", "aff", "affiliate"}
                                    : affiliate_params;
  }
  [[nodiscard]] std::string hash_key() const {
    return email_hash_key.empty() ? "revtrace-email:" + id : email_hash_key;
  }
};

std::vector<Site> make_sites() {
  std::vector<Site> sites(3);
  sites[0].id = unique("jrA");
  sites[0].host = "shop-a.example";
  sites[0].blog_host = "blog.shop-a.example";
  sites[1].id = unique("jrB");
  sites[1].host = "www.store-b.example";
  sites[1].blog_host = "news.store-b.example";
  sites[1].lookback_days = 60;
  sites[1].extra_visitor_key = "attribu_visitor_id";
  sites[1].visitor_key = "attribu_visitor_id";
  sites[1].email_hash_key = "journeys-secret-b";
  sites[2].id = unique("jrC");
  sites[2].host = "c-market.example";
  sites[2].blog_host = "help.c-market.example";
  sites[2].lookback_days = 30;
  sites[2].affiliate_params = {"partner"};
  for (auto& s : sites) s.secret = "whsec_" + s.id;
  return sites;
}

// ---- the expectation: touches, channels, sessions ------------------------------------------------

struct Touch {
  std::int64_t at = 0;
  std::string channel;
  std::optional<std::string> source, medium, campaign, term, content, click_id, referrer,
      landing_path;
};

struct ParsedUrl {
  std::string host, path;
  std::vector<std::pair<std::string, std::string>> query;
};

// Enough of a URL parser for the URLs this test generates (no escapes, no userinfo).
ParsedUrl parse_url(const std::string& url) {
  ParsedUrl u;
  std::string rest = url;
  if (const auto p = rest.find("://"); p != std::string::npos) rest = rest.substr(p + 3);
  if (const auto h = rest.find('#'); h != std::string::npos) rest = rest.substr(0, h);
  const auto slash = rest.find_first_of("/?");
  u.host = lower(rest.substr(0, slash));
  if (const auto colon = u.host.find(':'); colon != std::string::npos) u.host.resize(colon);
  rest = slash == std::string::npos ? "" : rest.substr(slash);
  const auto q = rest.find('?');
  u.path = rest.substr(0, q);
  if (q != std::string::npos) {
    std::stringstream in(rest.substr(q + 1));
    std::string kv;
    while (std::getline(in, kv, '&')) {
      const auto eq = kv.find('=');
      u.query.emplace_back(lower(kv.substr(0, eq)), eq == std::string::npos ? "" : kv.substr(eq + 1));
    }
  }
  return u;
}

std::string param(const ParsedUrl& u, const std::string& name) {
  for (const auto& [k, v] : u.query) {
    if (k == name && !v.empty()) return v;
  }
  return {};
}

std::string strip_www(std::string host) {
  if (host.starts_with("www.")) host = host.substr(4);
  return host;
}

bool same_or_sub(const std::string& host, const std::string& domain) {
  return host == domain || (host.size() > domain.size() && host.ends_with("." + domain));
}

const std::set<std::string> kSearchEngines = {"google", "bing", "duckduckgo", "yahoo", "ecosia"};
const std::set<std::string> kSocialNetworks = {"facebook", "instagram", "linkedin", "twitter",
                                                "reddit", "youtube"};

// The registrable name label: www.google.co.uk -> google, l.facebook.com -> facebook.
std::string name_label(const std::string& host) {
  std::vector<std::string> labels;
  std::stringstream in(host);
  std::string l;
  while (std::getline(in, l, '.')) labels.push_back(l);
  if (labels.size() < 2) return host;
  const bool two_label_suffix =
      labels.size() >= 3 && (labels[labels.size() - 2] == "co" || labels[labels.size() - 2] == "com");
  return labels[labels.size() - (two_label_suffix ? 3 : 2)];
}

std::string network_of(const std::string& source) {
  if (kSearchEngines.count(source) || kSocialNetworks.count(source)) return source;
  if (source.find('.') != std::string::npos) return name_label(source);
  return source;
}

bool paid_medium(const std::string& m) {
  return m.find("cp") != std::string::npos || m == "ppc" || m == "retargeting" ||
         m.starts_with("paid");
}

std::string classify(const Touch& t) {
  const std::string src = t.source.value_or(""), med = t.medium.value_or("");
  const std::string click = t.click_id.value_or("");
  if (!t.source && !t.medium && !t.campaign && !t.term && !t.content && !t.click_id && !t.referrer) {
    return "Direct";
  }
  if (med == "affiliate" || med == "affiliates") return "Affiliate";
  if (med == "display" || med == "banner" || med == "cpm") return "Display";
  const std::string net = network_of(src);
  const bool paid = paid_medium(med);
  if (click == "gclid" || click == "msclkid" || (kSearchEngines.count(net) && paid)) {
    return "Paid Search";
  }
  if (click == "ttclid" || (kSocialNetworks.count(net) && paid) || (click == "fbclid" && paid)) {
    return "Paid Social";
  }
  if (paid) return "Other";
  if (med == "email" || src == "email" || med == "newsletter" || src == "newsletter") return "Email";
  if (med == "social" || kSocialNetworks.count(net)) return "Organic Social";
  if (med == "organic" || kSearchEngines.count(net)) return "Organic Search";
  if (med == "referral" || t.referrer) return "Referral";
  return "Other";
}

Touch expect_touch(const Site& site, const std::string& url, const std::string& referrer,
                   std::int64_t at) {
  Touch t;
  t.at = at;
  const auto u = parse_url(url);
  auto set = [](std::optional<std::string>& field, const std::string& v) {
    if (!field && !v.empty()) field = v;
  };
  set(t.source, lower(param(u, "utm_source")));
  set(t.medium, lower(param(u, "utm_medium")));
  set(t.campaign, param(u, "utm_campaign"));
  set(t.term, param(u, "utm_term"));
  set(t.content, param(u, "utm_content"));
  static const std::vector<std::tuple<std::string, std::string, std::string>> kClickIds = {
      {"gclid", "google", "cpc"}, {"msclkid", "bing", "cpc"}, {"ttclid", "tiktok", "cpc"}};
  for (const auto& [name, src, med] : kClickIds) {
    if (!param(u, name).empty()) {
      t.click_id = name;
      set(t.source, src);
      set(t.medium, med);
      break;
    }
  }
  for (const auto& name : site.affiliates()) {
    if (const auto v = param(u, name); !v.empty()) {
      set(t.source, lower(v));
      set(t.medium, "affiliate");
      break;
    }
  }
  if (!t.click_id && !param(u, "fbclid").empty()) {
    t.click_id = "fbclid";
    set(t.source, "facebook");
    set(t.medium, "social");
  }
  if (!referrer.empty()) {
    const auto host = strip_www(parse_url(referrer).host);
    const bool own = host == strip_www(u.host) || same_or_sub(host, strip_www(site.host)) ||
                     same_or_sub(host, site.blog_host) || same_or_sub(host, "stripe.com");
    if (!own && !host.empty()) {
      t.referrer = host;
      std::string src, med;
      if (host == "t.co") {
        src = "twitter", med = "social";
      } else if (host == "mail.google.com") {
        src = "gmail", med = "email";
      } else if (kSearchEngines.count(name_label(host))) {
        src = name_label(host), med = "organic";
      } else if (kSocialNetworks.count(name_label(host))) {
        src = name_label(host), med = "social";
      } else {
        src = host, med = "referral";
      }
      set(t.source, src);
      set(t.medium, med);
    }
  }
  t.landing_path = u.path.empty() ? "/" : u.path;
  t.channel = classify(t);
  return t;
}

bool same_source(const Touch& a, const Touch& b) {
  return a.source == b.source && a.medium == b.medium && a.campaign == b.campaign &&
         a.term == b.term && a.content == b.content && a.click_id == b.click_id;
}

// ---- the generated journeys ----------------------------------------------------------------------

struct Pageview {
  std::string visitor, url, referrer;
  std::int64_t at = 0;
};

enum class Evidence { metadata, redirect, client_reference_id, email, none, stale_metadata };

const char* name_of(Evidence e) {
  switch (e) {
    case Evidence::metadata: return "metadata";
    case Evidence::redirect: return "checkout_redirect";
    case Evidence::client_reference_id: return "client_reference_id";
    case Evidence::email: return "identity_graph";
    case Evidence::none: return "unattributed";
    case Evidence::stale_metadata: return "metadata (all touches beyond the lookback)";
  }
  return "?";
}

struct Payment {
  std::string cs, pi, ch, currency, customer;
  std::string email;  // customer_details.email as Stripe sends it, "" for none
  std::int64_t amount = 0;
  std::int64_t created_s = 0;  // event created (seconds)
  bool livemode = true;
  Evidence evidence = Evidence::none;
  std::vector<std::int64_t> refunds;  // cumulative amount_refunded of each charge.refunded sent
  std::vector<std::string> visitors;  // the payment's identity component (by construction)
};

// One HTTP request of the journey, in the order a lane sends it.
struct Request {
  enum Kind { event, webhook } kind = event;
  std::string target, body, secret;  // secret: webhooks are signed at send time
  std::string topic;                 // contract name of the topic the record lands in
  std::string user_agent;
};

struct Journey {
  const Site* site = nullptr;
  std::string label;
  std::vector<Pageview> pageviews;  // every visitor's, in send (= log) order
  std::optional<Payment> payment;
  std::vector<Request> requests;
  bool late_web = false;  // its web events are sent after its Stripe events and redirects
};

class Generator {
 public:
  Generator(std::uint32_t seed, std::int64_t now) : rng_(seed), now_(now) {}

  Journey journey(const Site& site, int index) {
    Journey j;
    j.site = &site;
    const std::string tag = "j" + std::to_string(serial_++);
    j.label = site.id + "#" + std::to_string(index) + " (" + tag + ")";
    const std::string ua = pick<std::string>(
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.4 Safari/605.1.15",
         "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
         "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Safari/537.36"});
    const bool buys = chance(0.88);
    const std::int64_t t_pay = now_ - range(2 * kHour, 4 * kDay);
    Evidence ev = Evidence::none;
    if (buys) {
      const double r = uniform();
      ev = r < 0.30   ? Evidence::metadata
           : r < 0.50 ? Evidence::redirect
           : r < 0.65 ? Evidence::client_reference_id
           : r < 0.83 ? Evidence::email
           : r < 0.96 ? Evidence::none
                      : Evidence::stale_metadata;
    }
    const std::string a = tag + "-a", b = tag + "-b";
    const std::string email_raw = " Buyer." + tag + "@Example.COM ";
    const std::string email = "buyer." + tag + "@example.com";
    // Visitor a: 1-4 sessions ending in the buying session a few minutes before the payment.
    std::vector<std::pair<std::int64_t, Request>> timed;
    auto add_pageview = [&](const std::string& visitor, const std::string& url,
                            const std::string& referrer, std::int64_t at) {
      j.pageviews.push_back({visitor, url, referrer, at});
      bj::object e{{"type", "pageview"},   {"site_id", site.id},
                   {"visitor_id", visitor}, {"session_id", "s-" + visitor + "-" + std::to_string(at / kHour)},
                   {"event_id", "pv-" + visitor + "-" + std::to_string(at)},
                   {"occurred_at", at},   {"url", url},
                   {"referrer", referrer}, {"title", "Page"}};
      Request r{Request::event, "/v1/events", bj::serialize(e), "", "revtrace.web-events.v1", ua};
      timed.emplace_back(at, r);
      if (chance(0.04)) timed.emplace_back(at, r);  // a pixel retry: same event id
    };
    auto sessions_of = [&](const std::string& visitor, int n, std::int64_t last_landing,
                           bool buying) {
      std::vector<std::string> kinds = kinds_for(site);
      std::shuffle(kinds.begin(), kinds.end(), rng_);
      // Landings from the last backwards: gaps over 30 minutes of idleness, or (sometimes) a
      // switch to a new non-direct source a few minutes into the previous session.
      std::vector<std::int64_t> landings(static_cast<std::size_t>(n));
      std::vector<std::int64_t> spans(static_cast<std::size_t>(n));
      for (int k = n - 1; k >= 0; --k) {
        spans[static_cast<std::size_t>(k)] = (k == n - 1 && buying) ? 4 * kMinute : range(0, 5 * kMinute);
      }
      // Keep touches away from the lookback boundary (the payment time may move by seconds).
      auto off_boundary = [&](std::int64_t at) {
        return std::llabs(t_pay - at - site.lookback_ms()) < 3 * kHour ? at - 6 * kHour : at;
      };
      landings[static_cast<std::size_t>(n - 1)] = off_boundary(last_landing);
      for (int k = n - 2; k >= 0; --k) {
        const bool quick = kinds[static_cast<std::size_t>(k + 1)] != "direct" && chance(0.15);
        const std::int64_t gap = quick ? range(3 * kMinute, 10 * kMinute)
                                       : chance(0.5) ? range(35 * kMinute, 20 * kHour)
                                                     : range(1 * kDay, 25 * kDay);
        landings[static_cast<std::size_t>(k)] = off_boundary(
            landings[static_cast<std::size_t>(k + 1)] - gap - spans[static_cast<std::size_t>(k)]);
      }
      for (int k = 0; k < n; ++k) {
        const auto i = static_cast<std::size_t>(k);
        const std::int64_t at = landings[i];
        const auto [url, ref] = landing(site, kinds[i]);
        add_pageview(visitor, url, ref, at);
        const std::int64_t end = at + spans[i];
        std::int64_t t = at, last_pv = at;
        std::string prev = url;
        for (const char* path : {"/pricing", "/features", "/checkout"}) {
          t += range(40'000, 80'000);
          if (t > end) break;
          const std::string next = "https://" + site.host + path;
          add_pageview(visitor, next, prev, t);
          prev = next;
          last_pv = t;
        }
        // The idle limit itself: a tab left open exactly 30:00 continues the session, 30:00.001
        // starts a new (direct) one.
        if (!(buying && k == n - 1) && chance(0.12)) {
          add_pageview(visitor, "https://" + site.host + "/account", prev,
                       last_pv + 30 * kMinute + (chance(0.5) ? 1 : 0));
        }
      }
      return landings.front();
    };
    const int n_a = static_cast<int>(range(1, 4));
    std::int64_t buy_landing = t_pay - range(6 * kMinute, 25 * kMinute);
    if (ev == Evidence::stale_metadata) buy_landing = t_pay - site.lookback_ms() - range(2 * kDay, 9 * kDay);
    sessions_of(a, n_a, buy_landing, ev != Evidence::stale_metadata);
    // Cross-device: a second visitor identifying with the same email.
    const bool second_device =
        (ev == Evidence::email || ev == Evidence::metadata) && chance(0.3);
    if (second_device) {
      const std::int64_t last = t_pay - range(2 * kHour, 10 * kDay) + 17;  // +17: no equal times
      sessions_of(b, static_cast<int>(range(1, 2)), last, false);
      timed.emplace_back(last + 30'000, identify(site, b, email_raw, last + 30'000, ua));
    }
    const bool a_identifies = ev == Evidence::email || (ev != Evidence::none && chance(0.3));
    if (a_identifies) {
      const std::int64_t at = buy_landing + 50'000;
      timed.emplace_back(at, identify(site, a, ev == Evidence::email || chance(0.5)
                                                    ? email_raw
                                                    : "other." + tag + "@example.org",
                                      at, ua));
    }
    if (buys) {
      Payment p;
      const bool live = !chance(0.08);
      p.livemode = live;
      p.cs = std::string(live ? "cs_live_" : "cs_test_") + "jr" + tag.substr(1) + "x" + std::to_string(rng_() % 100000);
      p.pi = "pi_jr" + tag.substr(1) + "P" + std::to_string(rng_() % 100000);
      p.currency = pick<std::string>({"usd", "usd", "usd", "eur", "eur", "jpy"});
      p.amount = chance(0.25) ? pick<std::int64_t>({1, 2, 3, 7, 10, 11, 100, 101})
                              : range(50, 250'000);
      p.created_s = t_pay / 1000;
      p.evidence = ev;
      if (chance(0.25)) p.customer = "cus_jr" + tag.substr(1);
      // Every payer but the identity-graph ones has an email nobody identified with.
      if (ev == Evidence::email || (second_device && ev == Evidence::metadata)) {
        p.email = email;
      } else if (chance(0.7)) {
        p.email = "payer." + tag + "@example.net";
      }
      if (ev != Evidence::none) p.visitors.push_back(a);
      if (second_device) p.visitors.push_back(b);

      // The success page: back from Stripe Checkout, a direct continuation of the session.
      const std::int64_t thanks_at = t_pay + range(5'000, 40'000);
      const bool redirect = ev == Evidence::redirect || (ev == Evidence::metadata && chance(0.3));
      add_pageview(a, "https://" + site.host + "/thanks" + (redirect ? "?session_id=" + p.cs : ""),
                   "https://checkout.stripe.com/", thanks_at);
      bj::object md;
      if (ev == Evidence::metadata || ev == Evidence::stale_metadata) md[site.visitor_key] = a;
      if (chance(0.3)) md["order_ref"] = "ord-" + tag;
      std::string cref;
      if (ev == Evidence::client_reference_id ||
          ((ev == Evidence::metadata || ev == Evidence::redirect) && chance(0.3))) {
        cref = a;
      }
      const std::string hook = "/v1/webhooks/stripe/" + site.id;
      Request checkout{Request::webhook, hook, checkout_event(p, md, cref), site.secret,
                       "revtrace.stripe-events.v1", ""};
      // Send order only (the records carry their own times): the webhook at the payment, the
      // redirect before or after it.
      timed.emplace_back(t_pay, checkout);
      if (chance(0.2)) timed.emplace_back(t_pay + kMinute, checkout);   // Stripe redelivers
      if (chance(0.05)) timed.emplace_back(t_pay + kDay, checkout);     // ... much later
      if (redirect) {
        bj::object e{{"type", "checkout_redirect"}, {"site_id", site.id},
                     {"visitor_id", a},             {"event_id", "r_" + p.cs},
                     {"occurred_at", thanks_at},
                     {"url", "https://" + site.host + "/thanks?session_id=" + p.cs},
                     {"checkout_session_id", p.cs}};
        Request r{Request::event, "/v1/events", bj::serialize(e), "",
                  "revtrace.checkout-redirects.v1", ua};
        const std::int64_t when = chance(0.5) ? t_pay - 1 : thanks_at + 1;
        timed.emplace_back(when, r);
        if (chance(0.1)) timed.emplace_back(when + 2, r);  // a reload re-sends it
      }
      if (chance(0.2)) {  // refunds: cumulative amount_refunded, maybe a stale redelivery
        p.ch = "ch_jr" + tag.substr(1) + "C" + std::to_string(rng_() % 100000);
        const std::int64_t first = p.amount > 1 ? range(1, p.amount - 1) : 1;
        p.refunds.push_back(first);
        if (p.amount > 1 && chance(0.5)) p.refunds.push_back(chance(0.5) ? p.amount : range(first, p.amount));
        std::int64_t when = t_pay + 2 * kHour;
        std::vector<std::string> bodies;
        for (std::size_t i = 0; i < p.refunds.size(); ++i) {
          bodies.push_back(refund_event(p, p.refunds[i], i));
          timed.emplace_back(when++, Request{Request::webhook, hook, bodies.back(), site.secret,
                                             "revtrace.stripe-events.v1", ""});
        }
        if (chance(0.3)) {
          timed.emplace_back(when++, Request{Request::webhook, hook, bodies.front(), site.secret,
                                             "revtrace.stripe-events.v1", ""});
        }
      }
      // A return visit after the payment: not a touch of it.
      if (chance(0.12)) {
        const auto [url, ref] = landing(site, pick<std::string>({"google_organic", "newsletter", "direct"}));
        add_pageview(a, url, ref, t_pay + range(40 * kMinute, 90 * kMinute));
      }
      j.payment = std::move(p);
    }
    std::stable_sort(timed.begin(), timed.end(),
                     [](const auto& x, const auto& y) { return x.first < y.first; });
    // Sometimes the payment reaches revtrace before the visits that earned it (a tracker's
    // events buffered offline, an identify after checkout): the result must upgrade.
    if (chance(0.15)) {
      j.late_web = true;
      std::stable_partition(timed.begin(), timed.end(),
                            [](const auto& x) { return x.second.topic != "revtrace.web-events.v1"; });
    }
    for (auto& [at, r] : timed) j.requests.push_back(std::move(r));
    // The pageviews in the order they reach the log (the order the requests go out: by time),
    // which is the order sessions follow.
    std::stable_sort(j.pageviews.begin(), j.pageviews.end(),
                     [](const Pageview& x, const Pageview& y) { return x.at < y.at; });
    return j;
  }

 private:
  std::vector<std::string> kinds_for(const Site&) {
    return {"newsletter", "google_organic", "gclid", "facebook", "affiliate", "direct",
            pick<std::string>({"bing_organic", "msclkid", "twitter", "facebook_ads", "blog", "display",
                               "ref_on_c"})};
  }

  std::pair<std::string, std::string> landing(const Site& site, const std::string& kind) {
    const std::string base =
        "https://" + site.host + pick<std::string>({"/", "/pricing", "/blog/launch", "/features"});
    const std::string token = std::to_string(rng_() % 1000000);
    if (kind == "newsletter") {
      return {base + "?utm_source=" + pick<std::string>({"Newsletter", "newsletter"}) +
                  "&utm_medium=email&utm_campaign=" +
                  pick<std::string>({"spring", "Launch_2025", "weekly-42"}),
              pick<std::string>({"", "https://mail.google.com/"})};
    }
    if (kind == "google_organic") {
      return {base, pick<std::string>({"https://www.google.com/", "https://www.google.co.uk/"})};
    }
    if (kind == "bing_organic") return {base, "https://www.bing.com/search?q=shop"};
    if (kind == "gclid") {
      return {base + "?gclid=Cj0KCQ" + token + (chance(0.5) ? "&utm_campaign=brand" : ""),
              "https://www.google.com/"};
    }
    if (kind == "msclkid") return {base + "?msclkid=ms" + token, ""};
    if (kind == "facebook") {
      return {base + (chance(0.5) ? "?fbclid=IwAR" + token : ""), "https://l.facebook.com/"};
    }
    if (kind == "facebook_ads") {
      return {base + "?utm_source=facebook&utm_medium=paid_social&utm_campaign=retarget&fbclid=IwZX" +
                  token,
              "https://m.facebook.com/"};
    }
    if (kind == "twitter") return {base, "https://t.co/" + token};
    if (kind == "affiliate") {
      const auto& names = site.affiliates();
      return {base + "?" + names[rng_() % names.size()] + "=" +
                  pick<std::string>({"Partner42", "dealhunter", "blogger7"}),
              ""};
    }
    if (kind == "ref_on_c") {
      // ?ref= is an affiliate on the default sites, nothing on the site that names `partner`.
      return {base + "?ref=friend" + token.substr(0, 2), pick<std::string>({"", "https://" + site.blog_host + "/"})};
    }
    if (kind == "blog") return {base, "https://blog.example.org/reviews/" + token};
    if (kind == "display") {
      return {base + "?utm_source=adnet&utm_medium=display&utm_campaign=q3", ""};
    }
    // direct: typed in, or from the site's own other domain
    return {base, pick<std::string>({"", "", "https://" + site.blog_host + "/post"})};
  }

  Request identify(const Site& site, const std::string& visitor, const std::string& email,
                   std::int64_t at, const std::string& ua) {
    bj::object e{{"type", "identify"},
                 {"site_id", site.id},
                 {"visitor_id", visitor},
                 {"event_id", "id-" + visitor + "-" + std::to_string(at)},
                 {"occurred_at", at},
                 {"url", "https://" + site.host + "/signup"},
                 {"email", email},
                 {"traits", bj::object{{"plan", "pro"}}}};
    return Request{Request::event, "/v1/events", bj::serialize(e), "", "revtrace.web-events.v1", ua};
  }

  static bj::object fixture(const std::string& name) {
    const auto dir = std::filesystem::path(std::getenv("REVTRACE_SOURCE_DIR")) / "processor" /
                     "domain" / "testdata" / "stripe";
    return bj::parse(read_file(dir / name)).as_object();
  }

  std::string checkout_event(const Payment& p, const bj::object& md, const std::string& cref) {
    static const bj::object kTemplate =
        fixture("checkout.session.completed_api-2025-06-30.basil_jpy.json");
    bj::object e = kTemplate;
    e["id"] = "evt_" + p.cs.substr(3) + "_done";
    e["created"] = p.created_s;
    e["livemode"] = p.livemode;
    auto& o = e["data"].as_object()["object"].as_object();
    o["id"] = p.cs;
    o["amount_total"] = p.amount;
    o["amount_subtotal"] = p.amount;
    o["currency"] = p.currency;
    o["payment_intent"] = p.pi;
    o["customer"] = p.customer.empty() ? bj::value(nullptr) : bj::value(p.customer);
    o["customer_details"].as_object()["email"] =
        p.email.empty() ? bj::value(nullptr) : bj::value(p.email);
    o["client_reference_id"] = cref.empty() ? bj::value(nullptr) : bj::value(cref);
    o["metadata"] = md;
    o["created"] = p.created_s - 90;  // the session opened before it completed
    o["livemode"] = p.livemode;
    return bj::serialize(e);
  }

  std::string refund_event(const Payment& p, std::int64_t refunded, std::size_t n) {
    static const bj::object kTemplate = fixture("charge.succeeded_api-2020-08-27.json");
    bj::object e = kTemplate;
    e.erase("_note");
    e["id"] = "evt_" + p.ch.substr(3) + "_refund" + std::to_string(n);
    e["type"] = "charge.refunded";
    e["api_version"] = "2025-03-31.basil";
    e["created"] = p.created_s + 600 * static_cast<std::int64_t>(n + 1);
    e["livemode"] = p.livemode;
    auto& o = e["data"].as_object()["object"].as_object();
    o.erase("invoice");  // basil charges have none
    o["id"] = p.ch;
    o["amount"] = p.amount;
    o["amount_captured"] = p.amount;
    o["captured"] = true;
    o["status"] = "succeeded";
    o["paid"] = true;
    o["amount_refunded"] = refunded;
    o["refunded"] = refunded == p.amount;
    o["currency"] = p.currency;
    o["created"] = p.created_s - 2;  // the charge succeeded just before the session completed
    o["payment_intent"] = p.pi;
    o["customer"] = nullptr;
    o["metadata"] = bj::object{};
    o["livemode"] = p.livemode;
    return bj::serialize(e);
  }

  template <class T>
  T pick(std::initializer_list<T> items) {
    return *(items.begin() + static_cast<std::ptrdiff_t>(rng_() % items.size()));
  }
  std::int64_t range(std::int64_t lo, std::int64_t hi) {  // [lo, hi]
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
  }
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  bool chance(double p) { return uniform() < p; }

  std::mt19937_64 rng_;
  std::int64_t now_;
  int serial_ = 0;
};

// ---- the expected record of one payment ----------------------------------------------------------

// Sessions of one visitor from its pageviews in log order: idle over 30 minutes, or a traffic
// source (not Direct) that differs from the session's landing touch, starts a new one.
std::vector<Touch> sessionize(const Site& site, const std::vector<Pageview>& pageviews,
                              const std::string& visitor) {
  std::vector<Touch> sessions;
  std::optional<std::int64_t> last_seen;
  for (const auto& pv : pageviews) {
    if (pv.visitor != visitor) continue;
    Touch t = expect_touch(site, pv.url, pv.referrer, pv.at);
    const bool idle = last_seen && pv.at - *last_seen > 30 * kMinute;
    const bool new_source = t.channel != "Direct" && !sessions.empty() && !same_source(t, sessions.back());
    if (!last_seen || idle || new_source) sessions.push_back(t);
    last_seen = last_seen ? std::max(*last_seen, pv.at) : pv.at;
  }
  return sessions;
}

std::vector<std::int64_t> largest_remainder(std::int64_t amount, const std::vector<std::int64_t>& w) {
  std::int64_t total = 0;
  for (auto x : w) total += x;
  std::vector<std::int64_t> out(w.size());
  std::vector<std::pair<std::int64_t, std::size_t>> rem;
  std::int64_t given = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    out[i] = amount * w[i] / total;
    given += out[i];
    rem.emplace_back(amount * w[i] % total, i);
  }
  // Largest remainder first; equal remainders: the later touch first.
  std::sort(rem.begin(), rem.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second > b.second;
  });
  for (std::size_t k = 0; given < amount; ++k, ++given) ++out[rem[k].second];
  return out;
}

struct Expected {
  std::string key;
  const Site* site = nullptr;
  const Payment* payment = nullptr;
  std::string label;
  std::string method;
  std::int64_t paid_at = 0, refunded = 0;
  std::optional<std::string> email_hash;
  std::vector<std::string> visitors;
  std::vector<Touch> touches;
  std::map<std::string, std::vector<std::int64_t>> credits;  // exact models
  std::vector<double> time_decay_shares;
  std::size_t beyond_lookback = 0, after_payment = 0;  // sessions of its visitors left out
};

std::string hmac_hex(const std::string& key, const std::string& text) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 15];
  }
  return out;
}

Expected expect(const Journey& j) {
  const Site& site = *j.site;
  const Payment& p = *j.payment;
  Expected e;
  e.site = &site;
  e.payment = &p;
  e.label = j.label;
  e.key = site.id + "/" + p.pi;
  e.paid_at = p.created_s * 1000;
  if (!p.refunds.empty()) e.paid_at = std::min(e.paid_at, (p.created_s - 2) * 1000);  // earliest success
  for (auto r : p.refunds) e.refunded = std::max(e.refunded, r);
  if (!p.email.empty()) e.email_hash = hmac_hex(site.hash_key(), lower(trim(p.email)));
  for (const auto& v : p.visitors) {
    for (auto& t : sessionize(site, j.pageviews, v)) {
      if (t.at > e.paid_at) {
        ++e.after_payment;
      } else if (t.at < e.paid_at - site.lookback_ms()) {
        ++e.beyond_lookback;
      } else {
        e.touches.push_back(t);
      }
    }
  }
  std::sort(e.touches.begin(), e.touches.end(), [](const Touch& a, const Touch& b) { return a.at < b.at; });
  if (e.touches.empty()) {
    e.method = "unattributed";
    return e;
  }
  e.visitors = p.visitors;
  std::sort(e.visitors.begin(), e.visitors.end());
  e.method = p.evidence == Evidence::stale_metadata ? "metadata" : name_of(p.evidence);
  const std::size_t n = e.touches.size();
  auto one_hot = [&](std::size_t i) {
    std::vector<std::int64_t> c(n, 0);
    c[i] = p.amount;
    return c;
  };
  e.credits["first_touch"] = one_hot(0);
  e.credits["last_touch"] = one_hot(n - 1);
  std::size_t lnd = n - 1;
  for (std::size_t i = n; i-- > 0;) {
    if (e.touches[i].channel != "Direct") {
      lnd = i;
      break;
    }
  }
  e.credits["last_non_direct"] = one_hot(lnd);
  e.credits["linear"] = largest_remainder(p.amount, std::vector<std::int64_t>(n, 1));
  std::vector<std::int64_t> pos(n, 1);
  if (n >= 3) {
    std::fill(pos.begin(), pos.end(), 20);
    pos.front() = pos.back() = 40 * static_cast<std::int64_t>(n - 2);
  }
  e.credits["position_based"] = largest_remainder(p.amount, pos);
  double total = 0;
  std::vector<double> w;
  for (const auto& t : e.touches) {
    w.push_back(std::exp2(-static_cast<double>(e.paid_at - t.at) / static_cast<double>(7 * kDay)));
    total += w.back();
  }
  for (double x : w) e.time_decay_shares.push_back(static_cast<double>(p.amount) * x / total);
  return e;
}

// ---- comparing -----------------------------------------------------------------------------------

std::optional<std::string> opt_string(const bj::value& v) {
  if (v.is_null()) return std::nullopt;
  return std::string(v.as_string());
}

std::string show(const std::optional<std::string>& s) { return s ? "\"" + *s + "\"" : "null"; }

std::string show(const Touch& t) {
  std::ostringstream o;
  o << "{at " << t.at << ", " << t.channel << ", source " << show(t.source) << ", medium "
    << show(t.medium) << ", campaign " << show(t.campaign) << ", click_id " << show(t.click_id)
    << ", referrer " << show(t.referrer) << ", landing " << show(t.landing_path) << "}";
  return o.str();
}

// Every difference between the record and the expectation, one line each (empty = equal).
std::vector<std::string> compare(const Expected& e, const bj::object& r) {
  std::vector<std::string> diff;
  const Payment& p = *e.payment;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) diff.push_back(what);
  };
  auto num = [&](const char* f) { return r.at(f).as_int64(); };
  check(std::string(r.at("site_id").as_string()) == e.site->id, "site_id");
  check(std::string(r.at("payment_key").as_string()) == p.pi, "payment_key");
  check(std::string(r.at("revenue_type").as_string()) == "cash", "revenue_type");
  check(r.at("livemode").as_bool() == p.livemode, "livemode");
  check(num("amount") == p.amount, "amount " + std::to_string(num("amount")) + " != " + std::to_string(p.amount));
  check(std::string(r.at("currency").as_string()) == p.currency, "currency");
  check(num("refunded") == e.refunded, "refunded " + std::to_string(num("refunded")) + " != " + std::to_string(e.refunded));
  check(num("net") == p.amount - e.refunded, "net " + std::to_string(num("net")));
  check(num("paid_at") == e.paid_at, "paid_at " + std::to_string(num("paid_at")) + " != " + std::to_string(e.paid_at));
  check(num("revision") >= 1, "revision");
  const std::string method(r.at("method").as_string());
  check(method == e.method, "method " + method + " != " + e.method);
  const auto& st = r.at("stripe").as_object();
  check(opt_string(st.at("checkout_session")) == p.cs, "stripe.checkout_session");
  check(opt_string(st.at("payment_intent")) == p.pi, "stripe.payment_intent");
  check(opt_string(st.at("charge")) == (p.ch.empty() ? std::nullopt : std::optional(p.ch)), "stripe.charge");
  check(opt_string(st.at("customer")) == (p.customer.empty() ? std::nullopt : std::optional(p.customer)),
        "stripe.customer");
  check(st.at("invoice").is_null() && st.at("subscription").is_null() && st.at("payment_link").is_null(),
        "stripe.invoice/subscription/payment_link not null");
  check(opt_string(r.at("email_hash")) == e.email_hash, "email_hash " + show(opt_string(r.at("email_hash"))));
  std::vector<std::string> visitors;
  for (const auto& v : r.at("visitor_ids").as_array()) visitors.emplace_back(v.as_string());
  std::sort(visitors.begin(), visitors.end());
  check(visitors == e.visitors, "visitor_ids");

  const auto& touches = r.at("touches").as_array();
  std::vector<Touch> got;
  for (const auto& tv : touches) {
    const auto& t = tv.as_object();
    Touch x;
    x.at = t.at("at").as_int64();
    x.channel = std::string(t.at("channel").as_string());
    x.source = opt_string(t.at("source"));
    x.medium = opt_string(t.at("medium"));
    x.campaign = opt_string(t.at("campaign"));
    x.term = opt_string(t.at("term"));
    x.content = opt_string(t.at("content"));
    x.click_id = opt_string(t.at("click_id"));
    x.referrer = opt_string(t.at("referrer"));
    x.landing_path = opt_string(t.at("landing_path"));
    got.push_back(std::move(x));
  }
  bool touches_equal = got.size() == e.touches.size();
  for (std::size_t i = 0; touches_equal && i < got.size(); ++i) {
    const auto &a = got[i], &b = e.touches[i];
    touches_equal = a.at == b.at && a.channel == b.channel && a.source == b.source &&
                    a.medium == b.medium && a.campaign == b.campaign && a.term == b.term &&
                    a.content == b.content && a.click_id == b.click_id &&
                    a.referrer == b.referrer && a.landing_path == b.landing_path;
  }
  if (!touches_equal) {
    std::string s = "touches differ:\n    got     ";
    for (const auto& t : got) s += show(t) + " ";
    s += "\n    expected ";
    for (const auto& t : e.touches) s += show(t) + " ";
    diff.push_back(s);
  }
  const auto& credits = r.at("credits").as_object();
  auto array_of = [&](const char* model) {
    std::vector<std::int64_t> v;
    for (const auto& c : credits.at(model).as_array()) v.push_back(c.as_int64());
    return v;
  };
  auto show_v = [](const std::vector<std::int64_t>& v) {
    std::string s = "[";
    for (auto x : v) s += std::to_string(x) + " ";
    return s + "]";
  };
  for (const auto& [model, want] : e.credits) {
    const auto have = array_of(model.c_str());
    check(have == want, model + " " + show_v(have) + " != " + show_v(want));
  }
  const auto decay = array_of("time_decay");
  if (e.touches.empty()) {
    for (const char* m : {"first_touch", "last_touch", "last_non_direct", "linear", "position_based", "time_decay"}) {
      check(credits.at(m).as_array().empty(), std::string(m) + " not empty for an unattributed payment");
    }
  } else if (decay.size() != e.touches.size()) {
    diff.push_back("time_decay has " + std::to_string(decay.size()) + " credits");
  } else {
    std::int64_t sum = 0;
    for (std::size_t i = 0; i < decay.size(); ++i) {
      sum += decay[i];
      const double x = e.time_decay_shares[i];
      check(decay[i] >= 0 && static_cast<double>(decay[i]) >= std::floor(x - 1e-6) &&
                static_cast<double>(decay[i]) <= std::ceil(x + 1e-6),
            "time_decay[" + std::to_string(i) + "] = " + std::to_string(decay[i]) +
                ", exact share " + std::to_string(x));
    }
    check(sum == p.amount, "time_decay sums to " + std::to_string(sum));
  }
  return diff;
}

// ---- running it ----------------------------------------------------------------------------------

std::string write_config(const std::string& dir, const std::vector<Site>& sites,
                         const std::string& prefix, std::uint16_t gw_port,
                         std::uint16_t metrics_port) {
  const std::string path = dir + "/revtrace.toml";
  std::ofstream out(path);
  out << "log_level = \"info\"\n"
      << "[kafka]\nbootstrap = \"" << kafka_bootstrap() << "\"\npartitions = 6\n"
      << "topic_prefix = \"" << prefix << "\"\n"
      << "[gateway]\nlisten = \"127.0.0.1:" << gw_port << "\"\nthreads = 2\n"
      << "[processor]\ndata_dir = \"" << dir << "/processor\"\ngroup_id = \"" << unique("journeys")
      << "\"\nmetrics_listen = \"127.0.0.1:" << metrics_port << "\"\n";
  for (const auto& s : sites) {
    out << "[[sites]]\nid = \"" << s.id << "\"\nwebhook_secrets = [\"" << s.secret << "\"]\n"
        << "allowed_origins = [\"*\"]\nquery_tokens = [\"token-" << s.id << "\"]\n"
        << "own_domains = [\"" << s.blog_host << "\"]\n";
    if (s.lookback_days != 90) out << "lookback_days = " << s.lookback_days << "\n";
    if (!s.affiliate_params.empty()) {
      out << "affiliate_params = [";
      for (std::size_t i = 0; i < s.affiliate_params.size(); ++i) {
        out << (i ? ", " : "") << "\"" << s.affiliate_params[i] << "\"";
      }
      out << "]\n";
    }
    if (!s.extra_visitor_key.empty()) out << "visitor_id_keys = [\"" << s.extra_visitor_key << "\"]\n";
    if (!s.email_hash_key.empty()) out << "email_hash_key = \"" << s.email_hash_key << "\"\n";
  }
  return path;
}

struct Latest {
  std::map<std::string, std::string> values;  // key -> value of the highest (generation, revision)
  std::vector<std::string> conflicts;         // one (key, generation, revision), two contents
  std::size_t records = 0;
};

Latest read_latest(const std::string& bootstrap, const std::string& topic) {
  Latest out;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> best;
  std::map<std::tuple<std::string, std::int64_t, std::int64_t>, std::string> seen;
  for (auto& r : read_topic(bootstrap, topic)) {
    ++out.records;
    if (r.value.empty()) {  // a tombstone retires a merged payment key
      out.values.erase(r.key);
      best.erase(r.key);
      continue;
    }
    const auto doc = bj::parse(r.value).as_object();
    const std::int64_t gen = doc.contains("generation") ? doc.at("generation").as_int64() : 0;
    const std::int64_t rev = doc.at("revision").as_int64();
    auto [it, fresh] = seen.emplace(std::tuple{r.key, gen, rev}, r.value);
    if (!fresh && it->second != r.value) out.conflicts.push_back(r.key + " revision " + std::to_string(rev));
    auto b = best.find(r.key);
    if (b == best.end() || std::pair{gen, rev} > b->second) {
      best[r.key] = {gen, rev};
      out.values[r.key] = r.value;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("journeys: generated visitor journeys on three sites through the gateway, attributed "
          "as computed independently",
          "[kafka][journeys]") {
  const auto started = std::chrono::steady_clock::now();
  const std::string bootstrap = kafka_bootstrap();
  const std::string dir = temp_dir("revtrace-journeys");
  const std::string prefix = unique("journeys") + ".";
  const auto sites = make_sites();
  const auto gw_port = free_port();
  const auto metrics_port = free_port();
  const std::string config = write_config(dir, sites, prefix, gw_port, metrics_port);
  const std::string bin = revtrace_binary();
  INFO("logs in " << dir);
  {
    ChildProcess create({bin, "topics", "create", "--config", config}, {}, dir + "/topics.log");
    const int status = create.wait(120s).value_or(-1);
    INFO("revtrace topics create: " << create.log());
    REQUIRE(status == 0);
  }

  // Generate the journeys (deterministic for the seed; times relative to now).
  Generator gen(20250514, now_ms());
  std::vector<Journey> journeys;
  for (int i = 0; i < kJourneysPerSite; ++i) {
    for (const auto& s : sites) journeys.push_back(gen.journey(s, i));
  }
  std::vector<Expected> expected;
  std::map<std::string, int> by_method;
  std::size_t refunded = 0, test_mode = 0, requests = 0, with_touches = 0, beyond_lookback = 0,
              after_payment = 0, cross_device = 0, late_web = 0;
  std::map<std::string, int> by_channel;
  for (const auto& j : journeys) {
    requests += j.requests.size();
    if (!j.payment) continue;
    expected.push_back(expect(j));
    ++by_method[expected.back().method];
    refunded += !j.payment->refunds.empty();
    test_mode += !j.payment->livemode;
    with_touches += expected.back().touches.size();
    beyond_lookback += expected.back().beyond_lookback;
    after_payment += expected.back().after_payment;
    cross_device += j.payment->visitors.size() > 1;
    late_web += j.late_web;
    for (const auto& t : expected.back().touches) ++by_channel[t.channel];
  }
  // The mix is what the test claims to cover.
  REQUIRE(journeys.size() >= 300);
  REQUIRE(expected.size() >= 250);
  for (const char* m : {"metadata", "checkout_redirect", "client_reference_id", "identity_graph", "unattributed"}) {
    CHECK(by_method[m] >= 10);
  }
  CHECK(refunded >= 20);
  CHECK(test_mode >= 8);
  CHECK(beyond_lookback >= 10);
  CHECK(after_payment >= 10);
  CHECK(cross_device >= 10);
  CHECK(late_web >= 10);
  for (const char* c : {"Direct", "Email", "Organic Search", "Paid Search", "Organic Social",
                        "Paid Social", "Affiliate", "Referral", "Display"}) {
    CHECK(by_channel[c] >= 5);
  }

  // Debug: the gateway logs where each acknowledged webhook was stored (partition, offset).
  ChildProcess gateway({bin, "gateway", "--config", config}, {{"REVTRACE_LOG_LEVEL", "debug"}},
                       dir + "/gateway.log");
  ChildProcess processor({bin, "processor", "--config", config}, {}, dir + "/processor.log");
  REQUIRE(wait_for_http(gw_port, "/healthz", 60s));
  REQUIRE(wait_for_http(metrics_port, "/healthz", 60s));

  // Send: each journey's requests in order on one lane (a visitor's pageviews must reach the log
  // in their order: sessions follow the log), lanes in parallel over keep-alive connections.
  std::map<std::string, std::atomic<std::size_t>> accepted;
  for (const char* t : {"revtrace.web-events.v1", "revtrace.checkout-redirects.v1", "revtrace.stripe-events.v1"}) {
    accepted[t] = 0;
  }
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  std::multiset<std::string> accepted_webhooks;  // Stripe event ids answered 200
  std::vector<std::thread> lanes;
  for (int lane = 0; lane < kLanes; ++lane) {
    lanes.emplace_back([&, lane] {
      HttpConnection conn(gw_port);
      for (std::size_t i = static_cast<std::size_t>(lane); i < journeys.size(); i += kLanes) {
        for (const auto& r : journeys[i].requests) {
          const int want = r.kind == Request::webhook ? 200 : 202;
          HttpResult res;
          // Retried while the gateway answers 503 / the connection drops: every request is
          // idempotent downstream (explicit event ids, Stripe event ids).
          const bool ok = wait_until(60s, [&] {
            std::map<std::string, std::string> headers{{"Content-Type", "application/json"}};
            if (!r.user_agent.empty()) headers["User-Agent"] = r.user_agent;
            if (r.kind == Request::webhook) {
              headers["Stripe-Signature"] = stripe_signature(r.body, r.secret, now_ms() / 1000);
            }
            res = conn.request("POST", r.target, r.body, headers);
            return res.status == want || (res.status >= 400 && res.status < 500);
          }, 100ms);
          if (ok && res.status == want) {
            ++accepted.at(r.topic);
            if (r.kind == Request::webhook) {
              std::lock_guard lock(failures_mutex);
              accepted_webhooks.insert(std::string(bj::parse(r.body).as_object().at("id").as_string()));
            }
          } else {
            std::lock_guard lock(failures_mutex);
            failures.push_back(journeys[i].label + " " + r.target + " -> " +
                               std::to_string(res.status) + " " + res.body + "\n  " + r.body);
          }
        }
      }
    });
  }
  for (auto& t : lanes) t.join();
  const double send_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  {
    INFO("first failures: " << (failures.empty() ? "" : failures.front()));
    REQUIRE(failures.empty());
  }

  // Which acknowledged webhooks are not in the Stripe topic, where every partition ends, and
  // where the gateway was told each missing one was stored (plus its non-debug lines).
  auto explain_missing = [&](const std::string& stripe_topic) {
    std::multiset<std::string> missing = accepted_webhooks;
    std::map<int, std::pair<std::size_t, std::int64_t>> partitions;  // count, last offset
    for (const auto& rec : read_topic(bootstrap, stripe_topic)) {
      auto& [n, last] = partitions[rec.partition];
      ++n;
      last = std::max(last, rec.offset);
      const auto id = std::string(bj::parse(rec.value).as_object().at("event_id").as_string());
      if (auto it = missing.find(id); it != missing.end()) missing.erase(it);
    }
    std::ostringstream out;
    out << "acknowledged but not in the log:";
    for (const auto& id : missing) out << " " << id;
    out << "\npartitions:";
    const auto ends = end_offsets(bootstrap, stripe_topic, 6);
    for (int p = 0; p < 6; ++p) {
      const auto [n, last] = partitions.count(p) ? partitions.at(p) : std::pair<std::size_t, std::int64_t>{0, -1};
      out << " p" << p << ": " << n << " records, last offset " << last << ", high watermark "
          << ends.at(static_cast<std::size_t>(p)) << ";";
    }
    out << "\ngateway log (missing events, no other debug lines):\n";
    std::istringstream lines(gateway.log());
    for (std::string line; std::getline(lines, line);) {
      const bool about_missing = std::any_of(missing.begin(), missing.end(), [&](const std::string& id) {
        return line.find(id) != std::string::npos;
      });
      if (about_missing || line.find(" debug ") == std::string::npos) out << line << "\n";
    }
    return out.str();
  };
  // Everything accepted is in the input topics (pixel events are answered 202 once queued) ...
  for (auto& [topic, count] : accepted) {
    std::size_t have = 0;
    const bool all_in = wait_until(120s, [&] {
      have = read_topic(bootstrap, prefix + topic).size();
      return have >= count.load();
    }, 500ms);
    INFO(topic << ": " << have << " records for " << count.load() << " accepted requests");
    INFO((!all_in && topic == "revtrace.stripe-events.v1" ? explain_missing(prefix + topic) : std::string()));
    REQUIRE(all_in);
  }
  // ... and the processor has consumed all 18 input partitions, three polls in a row.
  int calm = 0;
  std::pair<std::int64_t, int> last_lag;
  const bool idle = wait_until(300s, [&] {
    last_lag = processor_lag(metrics_port);
    calm = (last_lag.first == 0 && last_lag.second == 18) ? calm + 1 : 0;
    return calm >= 3;
  }, 500ms);
  INFO("processor lag " << last_lag.first << " over " << last_lag.second << " partitions\n"
                        << "processor log:\n" << processor.log());
  REQUIRE(idle);

  // The output holds one latest record per payment; reading it twice alike rules out a last
  // transaction still in flight.
  const std::string output = prefix + "revtrace.attributed-revenue.v1";
  Latest latest, previous;
  const bool settled = wait_until(120s, [&] {
    previous = std::move(latest);
    latest = read_latest(bootstrap, output);
    return latest.values.size() >= expected.size() && latest.values == previous.values;
  }, 1s);
  INFO(latest.values.size() << " latest records for " << expected.size() << " payments");
  CHECK(settled);
  CHECK(latest.conflicts.empty());

  // Nothing generated here is invalid: the dead-letter topic stays empty.
  const auto dead = read_topic(bootstrap, prefix + "revtrace.dead-letter.v1");
  {
    INFO("dead letters: " << dead.size() << (dead.empty() ? "" : " first: " + dead.front().value));
    CHECK(dead.empty());
  }

  // Every payment exactly once, and no other key.
  std::set<std::string> want_keys;
  for (const auto& e : expected) want_keys.insert(e.key);
  REQUIRE(want_keys.size() == expected.size());
  std::vector<std::string> extra;
  for (const auto& [k, v] : latest.values) {
    if (!want_keys.count(k)) extra.push_back(k);
  }
  INFO("keys without a generated payment: " << extra.size() << (extra.empty() ? "" : " e.g. " + extra.front()));
  CHECK(extra.empty());

  // Record by record against the expectation.
  std::size_t mismatched = 0, missing = 0;
  std::string report;
  for (const auto& e : expected) {
    const auto it = latest.values.find(e.key);
    if (it == latest.values.end()) {
      ++missing;
      if (missing <= 5) report += "missing " + e.key + " (" + e.label + ")\n";
      continue;
    }
    CHECK(it->second.find('@') == std::string::npos);  // only the keyed hash of an email
    const auto diff = compare(e, bj::parse(it->second).as_object());
    if (diff.empty()) continue;
    if (++mismatched <= 8) {
      report += e.key + " (" + e.label + ", evidence " + name_of(e.payment->evidence) + "):\n";
      for (const auto& d : diff) report += "  " + d + "\n";
      report += "  record: " + it->second + "\n";
    }
  }
  INFO(report);
  CHECK(missing == 0);
  CHECK(mismatched == 0);

  // The produced records conform to the published schema (independent validator: ajv).
  {
    const std::string source_dir = std::getenv("REVTRACE_SOURCE_DIR");
    const std::string file = dir + "/attributed-revenue.ndjson";
    std::ofstream out(file);
    for (const auto& [k, v] : latest.values) out << v << "\n";
    out.close();
    const std::string cmd = "node " + source_dir + "/tests/js/validate-records.mjs " + source_dir +
                            "/schemas revtrace.attributed-revenue.v1 " + file + " > " + file +
                            ".out 2>&1";
    const int rc = std::system(cmd.c_str());
    INFO("validator: " << read_file(file + ".out"));
    CHECK(rc == 0);
  }

  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::ostringstream figures;
  figures << "journeys " << journeys.size() << ", payments " << expected.size()
          << " (metadata " << by_method["metadata"] << ", checkout_redirect "
          << by_method["checkout_redirect"] << ", client_reference_id "
          << by_method["client_reference_id"] << ", identity_graph " << by_method["identity_graph"]
          << ", unattributed " << by_method["unattributed"] << "; refunded " << refunded
          << ", test mode " << test_mode << ", cross-device " << cross_device
          << ", web events after the payment " << late_web
          << "), touches credited " << with_touches << " (";
  for (const auto& [c, n] : by_channel) figures << c << " " << n << ", ";
  figures << "left out: " << beyond_lookback << " beyond the lookback, " << after_payment
          << " after the payment)"
          << ", HTTP requests " << requests << ", output records " << latest.records
          << "; sent in " << send_seconds << " s, total " << total_seconds << " s";
  WARN(figures.str());

  gateway.signal(SIGTERM);
  processor.signal(SIGTERM);
  CHECK(gateway.wait(30s) == 0);
  CHECK(processor.wait(30s) == 0);
  if (mismatched == 0 && missing == 0) std::filesystem::remove_all(dir);
}
