#include "app/demo.hpp"

#include <random>

#include "common/http.hpp"
#include "common/topics.hpp"

namespace revtrace::app {
namespace {

namespace topics = common::topics;

struct Channel {
  const char* query;     // appended to the landing URL
  const char* referrer;  // document.referrer of the landing pageview
  int weight;
};

// Landing traffic mix of the demo.
const std::vector<Channel> kChannels{
    {"", "https://www.google.com/", 26},
    {"?gclid=Cj0KCQdemo&utm_source=google&utm_medium=cpc&utm_campaign=brand-search", "", 14},
    {"?utm_source=newsletter&utm_medium=email&utm_campaign=autumn-sale", "", 12},
    {"?utm_source=facebook&utm_medium=paid_social&utm_campaign=retargeting&fbclid=IwAR0demo", "", 10},
    {"", "https://t.co/", 6},
    {"", "https://www.linkedin.com/", 5},
    {"?ref=partner42", "", 6},
    {"", "https://www.producthunt.com/", 5},
    {"", "", 16},
};

const std::vector<const char*> kPaths{"/", "/pricing", "/features", "/blog/attribution-101",
                                      "/docs", "/about"};
const std::vector<const char*> kCountries{"US", "DE", "GB", "FR", "JP", "CA", "NL", "BR"};
const std::vector<std::pair<const char*, const char*>> kDevices{
    {"Chrome", "macOS"}, {"Safari", "iOS"}, {"Chrome", "Android"}, {"Firefox", "Windows"},
    {"Edge", "Windows"}};

std::string esc(std::string_view s) {
  std::string out;
  common::http::append_json_escaped(out, s);
  return out;
}

std::string stripe_record(const std::string& site, const std::string& id, const std::string& type,
                          std::int64_t created_s, const std::string& object, std::int64_t now_ms) {
  const std::string payload = R"({"id":")" + id +
                              R"(","object":"event","api_version":"2025-03-31.basil","created":)" +
                              std::to_string(created_s) + R"(,"livemode":true,"type":")" + type +
                              R"(","data":{"object":)" + object + "}}";
  return R"({"site_id":")" + site + R"(","source":"webhook","received_at":)" +
         std::to_string(now_ms) + R"(,"event_id":")" + id + R"(","event_type":")" + type +
         R"(","livemode":true,"api_version":"2025-03-31.basil","created":)" +
         std::to_string(created_s) + R"(,"payload":")" + esc(payload) + "\"}";
}

}  // namespace

std::vector<common::SiteConfig> demo_sites() {
  std::vector<common::SiteConfig> sites;
  for (const char* id : {"demo-shop", "demo-saas", "demo-jp"}) {
    common::SiteConfig s;
    s.id = id;
    s.webhook_secrets = {std::string("whsec_") + id};
    s.allowed_origins = {"*"};
    s.query_tokens = {std::string("token-") + id};
    s.own_domains = {std::string(id) + ".example"};
    sites.push_back(s);
  }
  return sites;
}

std::vector<DemoRecord> demo_records(std::int64_t now_ms, std::uint32_t seed, DemoSummary& summary) {
  std::mt19937 rng(seed);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  int total_weight = 0;
  for (const auto& c : kChannels) total_weight += c.weight;
  auto pick_channel = [&]() -> const Channel& {
    int r = static_cast<int>(rng() % static_cast<unsigned>(total_weight));
    for (const auto& c : kChannels) {
      if ((r -= c.weight) < 0) return c;
    }
    return kChannels.back();
  };
  struct SiteSpec {
    const char* id;
    const char* currency;
    std::vector<std::int64_t> prices;
    bool subscription;
    int visitors;
  };
  const std::vector<SiteSpec> specs{{"demo-shop", "usd", {2900, 4900, 9900, 14900}, false, 2000},
                                    {"demo-saas", "eur", {1900, 4900}, true, 1500},
                                    {"demo-jp", "jpy", {800, 3000, 12000}, false, 800}};
  std::vector<DemoRecord> out;
  const std::int64_t day = 24LL * 3600 * 1000;
  const std::int64_t start = now_ms - 40 * day;
  int pay_seq = 0;
  for (const auto& site : specs) {
    bool refunded_one = false;
    for (int v = 0; v < site.visitors; ++v) {
      ++summary.visitors;
      const std::string visitor = std::string("v_") + site.id + "_" + std::to_string(v);
      const auto& [browser, os] = kDevices[pick(kDevices.size())];
      const std::string country = kCountries[pick(kCountries.size())];
      std::int64_t t = start + static_cast<std::int64_t>(rng() % static_cast<unsigned>(35 * day / 1000)) * 1000;
      const int sessions = 1 + static_cast<int>(pick(3));
      for (int s = 0; s < sessions; ++s) {
        const Channel& ch = pick_channel();
        const int views = 1 + static_cast<int>(pick(4));
        for (int p = 0; p < views; ++p) {
          const std::string url = std::string("https://") + site.id + ".example" +
                                  kPaths[p == 0 ? pick(3) : pick(kPaths.size())] +
                                  (p == 0 ? ch.query : "");
          const std::string referrer = p == 0 ? ch.referrer : std::string("https://") + site.id + ".example/";
          out.push_back({std::string(topics::kWebEvents), site.id,
                         R"({"event_id":"demo-)" + std::to_string(out.size()) +
                             R"(","type":"pageview","site_id":")" + site.id +
                             R"(","visitor_id":")" + visitor + R"(","occurred_at":)" +
                             std::to_string(t) + R"(,"received_at":)" + std::to_string(t + 40) +
                             R"(,"url":")" + esc(url) + R"(","referrer":")" + esc(referrer) +
                             R"(","device":{"browser":")" + browser + R"(","os":")" + os +
                             R"(","device_class":")" +
                             (std::string(os) == "iOS" || std::string(os) == "Android" ? "mobile" : "desktop") +
                             R"("},"country":")" + country + R"("})"});
          ++summary.pageviews;
          t += 20'000 + static_cast<std::int64_t>(pick(120)) * 1000;
        }
        t += day / 2 + static_cast<std::int64_t>(pick(5)) * day;
      }
      if (pick(100) >= 4 || t > now_ms - 60'000) continue;  // ~4 % of visitors pay
      ++summary.payments;
      const int n = ++pay_seq;
      const std::string cs = "cs_demo_" + std::to_string(n);
      const std::string pi = "pi_demo_" + std::to_string(n);
      const std::string ch_id = "ch_demo_" + std::to_string(n);
      const std::int64_t amount = site.prices[pick(site.prices.size())];
      const std::int64_t paid_s = t / 1000 + 60;
      const std::string email = "buyer" + std::to_string(n) + "@example.com";
      if (!site.subscription) {
        const std::string session = R"({"id":")" + cs +
            R"(","object":"checkout.session","amount_total":)" + std::to_string(amount) +
            R"(,"currency":")" + site.currency +
            R"(","payment_status":"paid","status":"complete","mode":"payment","livemode":true,"client_reference_id":null,"customer":null,"customer_details":{"email":")" +
            email + R"("},"payment_intent":")" + pi +
            R"(","payment_link":null,"metadata":{"revtrace_visitor_id":")" + visitor +
            R"("},"created":)" + std::to_string(paid_s) + "}";
        out.push_back({std::string(topics::kStripeEvents), site.id,
                       stripe_record(site.id, "evt_demo_cs_" + std::to_string(n),
                                     "checkout.session.completed", paid_s, session, now_ms)});
        ++summary.stripe_events;
        if (!refunded_one && n % 3 == 0) {
          refunded_one = true;
          const std::string charge = R"({"id":")" + ch_id +
              R"(","object":"charge","amount":)" + std::to_string(amount) +
              R"(,"amount_captured":)" + std::to_string(amount) + R"(,"amount_refunded":)" +
              std::to_string(amount / 2) + R"(,"refunded":false,"currency":")" + site.currency +
              R"(","customer":null,"livemode":true,"paid":true,"status":"succeeded","payment_intent":")" + pi +
              R"(","billing_details":{"email":")" + email +
              R"("},"receipt_email":null,"metadata":{},"created":)" + std::to_string(paid_s) + "}";
          out.push_back({std::string(topics::kStripeEvents), site.id,
                         stripe_record(site.id, "evt_demo_refund_" + std::to_string(n),
                                       "charge.refunded", paid_s + 7200, charge, now_ms)});
          ++summary.stripe_events;
        }
      } else {
        const std::string sub = "sub_demo_" + std::to_string(n);
        const std::string cus = "cus_demo_" + std::to_string(n);
        const std::string session = R"({"id":")" + cs +
            R"(","object":"checkout.session","amount_total":)" + std::to_string(amount) +
            R"(,"currency":")" + site.currency +
            R"(","payment_status":"paid","status":"complete","mode":"subscription","livemode":true,"client_reference_id":null,"customer":")" +
            cus + R"(","customer_details":{"email":")" + email +
            R"("},"payment_intent":null,"subscription":")" + sub + R"(","invoice":"in_demo_)" +
            std::to_string(n) + R"(_0","payment_link":null,"metadata":{"revtrace_visitor_id":")" +
            visitor + R"("},"created":)" + std::to_string(paid_s) + "}";
        out.push_back({std::string(topics::kStripeEvents), site.id,
                       stripe_record(site.id, "evt_demo_cs_" + std::to_string(n),
                                     "checkout.session.completed", paid_s, session, now_ms)});
        ++summary.stripe_events;
        // The first invoice and the monthly renewals that fall before now.
        for (int month = 0; month < 3; ++month) {
          const std::int64_t at_s = paid_s + month * 30LL * 24 * 3600;
          if (at_s * 1000 > now_ms) break;
          const std::string inv = "in_demo_" + std::to_string(n) + "_" + std::to_string(month);
          const std::string invoice = R"({"id":")" + inv +
              R"(","object":"invoice","amount_paid":)" + std::to_string(amount) +
              R"(,"currency":")" + site.currency + R"(","customer":")" + cus +
              R"(","customer_email":")" + email + R"(","billing_reason":")" +
              (month == 0 ? "subscription_create" : "subscription_cycle") +
              R"(","livemode":true,"status":"paid","metadata":{},"parent":{"type":"subscription_details","subscription_details":{"subscription":")" +
              sub + R"(","metadata":{"revtrace_visitor_id":")" + visitor +
              R"("}}},"created":)" + std::to_string(at_s) + "}";
          out.push_back({std::string(topics::kStripeEvents), site.id,
                         stripe_record(site.id, "evt_demo_inv_" + inv, "invoice.paid", at_s,
                                       invoice, now_ms)});
          ++summary.stripe_events;
          if (month > 0) ++summary.payments;
        }
      }
    }
  }
  return out;
}

}  // namespace revtrace::app
