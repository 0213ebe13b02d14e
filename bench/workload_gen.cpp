#include "bench/workload_gen.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace revtrace::bench {
namespace {

constexpr const char* kLandings[] = {
    "?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
    "?gclid=Cj0KCQjw&utm_source=google&utm_medium=cpc&utm_campaign=brand",
    "?utm_source=facebook&utm_medium=paid_social&utm_campaign=retarget&utm_content=video",
    "?ref=partner7",
    "",
    "",
};
constexpr const char* kReferrers[] = {"", "", "https://l.facebook.com/", "https://partner7.example/blog",
                                      "https://www.google.com/", ""};
constexpr const char* kPaths[] = {"/", "/pricing", "/features", "/blog/how-we-grew", "/docs/start",
                                  "/signup"};
constexpr const char* kDevices[] = {
    R"("device":{"browser":"Chrome","os":"macOS","device_class":"desktop"})",
    R"("device":{"browser":"Safari","os":"iOS","device_class":"mobile"})",
    R"("device":{"browser":"Firefox","os":"Windows","device_class":"desktop"})",
    R"("device":{"browser":"Chrome","os":"Android","device_class":"mobile"})",
};
constexpr const char* kCountries[] = {"US", "DE", "GB", "FR", "IN", "BR", "JP", "CA"};

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// A 26-character ULID-shaped id (Crockford base32), the shape of the pixel's visitor and event
// ids in schemas/examples: a 48-bit millisecond time, then 80 random bits.
std::string random_id(std::mt19937_64& rng, std::int64_t at_ms) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  std::string id(26, '0');
  auto t = static_cast<std::uint64_t>(at_ms);
  for (int i = 9; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = kAlphabet[t & 31];
    t >>= 5;
  }
  std::uint64_t a = rng();
  std::uint64_t b = rng();
  for (int i = 10; i < 26; ++i) {
    std::uint64_t& r = i < 18 ? a : b;
    id[static_cast<std::size_t>(i)] = kAlphabet[r & 31];
    r >>= 5;
  }
  return id;
}

// The gateway's stripe-events record around a raw Stripe event.
std::string stripe_record(const std::string& site, const std::string& id, const std::string& type,
                          std::int64_t created_s, const std::string& object, std::int64_t received_ms) {
  const std::string payload = R"({"id":")" + id +
                              R"(","object":"event","api_version":"2025-03-31.basil","created":)" +
                              std::to_string(created_s) + R"(,"livemode":true,"pending_webhooks":1,"type":")" +
                              type + R"(","data":{"object":)" + object + "}}";
  return R"({"site_id":")" + site + R"(","source":"webhook","received_at":)" +
         std::to_string(received_ms) + R"(,"event_id":")" + id + R"(","event_type":")" + type +
         R"(","livemode":true,"api_version":"2025-03-31.basil","created":)" +
         std::to_string(created_s) + R"(,"payload":")" + escape(payload) + "\"}";
}

std::string checkout_session(const std::string& n, std::int64_t amount, const std::string& mode,
                             const std::string& visitor_metadata, std::int64_t created_s,
                             const std::string& subscription) {
  return R"({"id":"cs_)" + n + R"(","object":"checkout.session","amount_subtotal":)" +
         std::to_string(amount) + R"(,"amount_total":)" + std::to_string(amount) +
         R"(,"currency":"usd","payment_status":"paid","status":"complete","mode":")" + mode +
         R"(","livemode":true,"client_reference_id":null,"customer":)" +
         (subscription.empty() ? std::string("null") : "\"cus_" + n + "\"") +
         R"(,"customer_details":{"email":"buyer)" + n + R"(@example.com","name":"Buyer"},"payment_intent":)" +
         (subscription.empty() ? "\"pi_" + n + "\"" : std::string("null")) +
         R"(,"invoice":)" + (subscription.empty() ? std::string("null") : "\"in_" + n + "_1\"") +
         R"(,"subscription":)" + (subscription.empty() ? std::string("null") : "\"" + subscription + "\"") +
         R"(,"payment_link":null,"metadata":{)" + visitor_metadata + R"(},"created":)" +
         std::to_string(created_s) + "}";
}

std::string invoice(const std::string& n, int k, std::int64_t amount, const std::string& subscription,
                    const std::string& visitor_metadata, std::int64_t paid_s) {
  return R"({"id":"in_)" + n + "_" + std::to_string(k) +
         R"(","object":"invoice","amount_due":)" + std::to_string(amount) + R"(,"amount_paid":)" +
         std::to_string(amount) + R"(,"amount_remaining":0,"billing_reason":")" +
         (k == 1 ? "subscription_create" : "subscription_cycle") +
         R"(","currency":"usd","customer":"cus_)" + n + R"(","customer_email":"buyer)" + n +
         R"(@example.com","livemode":true,"metadata":{},"parent":{"type":"subscription_details","subscription_details":{"metadata":{)" +
         visitor_metadata + R"(},"subscription":")" + subscription +
         R"("}},"status":"paid","status_transitions":{"paid_at":)" + std::to_string(paid_s) +
         R"(},"created":)" + std::to_string(paid_s) + "}";
}

std::string refund_charge(const std::string& n, std::int64_t amount, std::int64_t created_s) {
  return R"({"id":"ch_)" + n + R"(","object":"charge","amount":)" + std::to_string(amount) +
         R"(,"amount_captured":)" + std::to_string(amount) + R"(,"amount_refunded":)" +
         std::to_string(amount / 2) +
         R"(,"refunded":false,"captured":true,"currency":"usd","customer":null,"livemode":true,"paid":true,"status":"succeeded","payment_intent":"pi_)" +
         n + R"(","billing_details":{"email":null},"receipt_email":null,"metadata":{},"created":)" +
         std::to_string(created_s) + "}";
}

}  // namespace

std::string site_id(const WorkloadOptions& options, int i) {
  return options.site_prefix + "-" + std::to_string(i);
}

std::string pageview_record(const std::string& site, const std::string& visitor,
                            const std::string& event_id, std::int64_t at_ms, const std::string& url,
                            const std::string& referrer) {
  std::string r;
  r.reserve(320 + url.size());
  r += R"({"event_id":")";
  r += event_id;
  r += R"(","type":"pageview","site_id":")";
  r += site;
  r += R"(","visitor_id":")";
  r += visitor;
  r += R"(","occurred_at":)";
  r += std::to_string(at_ms);
  r += R"(,"received_at":)";
  r += std::to_string(at_ms + 35);
  r += R"(,"url":")";
  r += url;
  r += '"';
  if (!referrer.empty()) {
    r += R"(,"referrer":")";
    r += referrer;
    r += '"';
  }
  r += ",";
  r += kDevices[std::hash<std::string>{}(visitor) % 4];
  r += R"(,"country":")";
  r += kCountries[std::hash<std::string>{}(visitor) % 8];
  r += R"("})";
  return r;
}

std::string checkout_webhook_payload(const std::string& event_id, const std::string& session_id,
                                     const std::string& visitor, std::int64_t amount,
                                     std::int64_t created_s) {
  const std::string object = R"({"id":")" + session_id +
      R"(","object":"checkout.session","amount_subtotal":)" + std::to_string(amount) +
      R"(,"amount_total":)" + std::to_string(amount) +
      R"(,"currency":"usd","payment_status":"paid","status":"complete","mode":"payment","livemode":true,"client_reference_id":null,"customer":null,"customer_details":{"email":null},"payment_intent":"pi_)" +
      session_id.substr(3) + R"(","payment_link":null,"metadata":{"revtrace_visitor_id":")" + visitor +
      R"("},"created":)" + std::to_string(created_s) + "}";
  return R"({"id":")" + event_id +
         R"(","object":"event","api_version":"2025-03-31.basil","created":)" +
         std::to_string(created_s) +
         R"(,"livemode":true,"pending_webhooks":1,"type":"checkout.session.completed","data":{"object":)" +
         object + "}}";
}

void generate(const WorkloadOptions& options, const std::function<bool(std::vector<Record>&)>& sink,
              WorkloadStats& stats) {
  std::vector<Record> chunk;
  const std::uint64_t end = options.first_visitor + options.visitors;
  for (std::uint64_t from = options.first_visitor; from < end; from += options.chunk_visitors) {
    const std::uint64_t to = std::min(end, from + options.chunk_visitors);
    std::mt19937_64 rng(options.seed * 0x9E3779B97F4A7C15ULL + from);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    chunk.clear();
    for (std::uint64_t v = from; v < to; ++v) {
      // Skewed site sizes: a few large sites, a long tail of small ones.
      const double u = unit(rng);
      const int s = std::min(options.sites - 1, static_cast<int>(options.sites * u * u));
      const std::string site = site_id(options, s);
      const std::string host = "https://" + site + ".example";
      std::int64_t t = options.base_ms + static_cast<std::int64_t>(rng() % (30LL * 86400000));
      const std::string visitor = random_id(rng, t);
      ++stats.visitors;
      int sessions = 1;
      while (sessions < 6 && unit(rng) < 0.45) ++sessions;
      for (int k = 0; k < sessions; ++k) {
        const int landing = static_cast<int>(rng() % 6);
        const int views = 1 + static_cast<int>(rng() % 4);
        for (int p = 0; p < views; ++p) {
          const std::string url = host + kPaths[(p + k) % 6] + (p == 0 ? kLandings[landing] : "");
          chunk.push_back({0, site,
                           pageview_record(site, visitor, random_id(rng, t), t, url,
                                           p == 0 ? kReferrers[landing] : "")});
          ++stats.pageviews;
          t += 20000 + static_cast<std::int64_t>(rng() % 60000);
        }
        t += 2 * 3600 * 1000 + static_cast<std::int64_t>(rng() % (3LL * 86400000));
      }
      const bool pays = unit(rng) < options.payer_fraction;
      const bool identifies = pays ? unit(rng) < 0.5 : unit(rng) < 0.08;
      const std::string n = site + "_" + std::to_string(v);
      if (identifies) {
        chunk.push_back({0, site,
                         R"({"event_id":")" + random_id(rng, t) + R"(","type":"identify","site_id":")" +
                             site + R"(","visitor_id":")" + visitor + R"(","email":"buyer)" + n +
                             R"(@example.com","occurred_at":)" + std::to_string(t) +
                             R"(,"received_at":)" + std::to_string(t + 30) + "}"});
        ++stats.identifies;
      }
      if (!pays) continue;
      ++stats.payers;
      const std::int64_t amount = 500 + static_cast<std::int64_t>(rng() % 49500);
      const std::int64_t paid_s = t / 1000 + 60;
      const bool by_metadata = rng() % 3 != 0;
      const std::string md = by_metadata ? R"("revtrace_visitor_id":")" + visitor + "\"" : std::string();
      const bool subscription = rng() % 3 == 0;
      const std::string sub = subscription ? "sub_" + n : std::string();
      const auto completed = stripe_record(
          site, "evt_cs_" + n, "checkout.session.completed", paid_s,
          checkout_session(n, amount, subscription ? "subscription" : "payment", md, paid_s, sub), t + 60000);
      chunk.push_back({2, site, completed});
      ++stats.stripe_events;
      if (rng() % 20 == 0) {  // Stripe delivers at least once
        chunk.push_back({2, site, completed});
        ++stats.duplicates;
        ++stats.stripe_events;
      }
      if (!by_metadata) {
        chunk.push_back({1, site,
                         R"({"event_id":")" + random_id(rng, t) +
                             R"(","type":"checkout_redirect","site_id":")" + site +
                             R"(","visitor_id":")" + visitor + R"(","checkout_session_id":"cs_)" + n +
                             R"(","url":")" + host + "/thanks?session_id=cs_" + n +
                             R"(","received_at":)" + std::to_string(t + 90000) + "}"});
        ++stats.redirects;
      }
      if (subscription) {
        ++stats.subscriptions;
        const int invoices = 1 + static_cast<int>(rng() % 6);  // the first and up to 5 renewals
        for (int k = 1; k <= invoices; ++k) {
          const std::int64_t at = paid_s + (k - 1) * 30LL * 86400;
          chunk.push_back({2, site,
                           stripe_record(site, "evt_in_" + n + "_" + std::to_string(k), "invoice.paid",
                                         at, invoice(n, k, amount, sub, md, at), at * 1000 + 500)});
          ++stats.stripe_events;
          if (k > 1) ++stats.renewals;
        }
      } else if (rng() % 10 == 0) {
        chunk.push_back({2, site,
                         stripe_record(site, "evt_rf_" + n, "charge.refunded", paid_s + 86400,
                                       refund_charge(n, amount, paid_s), (paid_s + 86400) * 1000)});
        ++stats.refunds;
        ++stats.stripe_events;
      }
    }
    std::shuffle(chunk.begin(), chunk.end(), rng);
    stats.records += chunk.size();
    for (const auto& r : chunk) stats.bytes += r.value.size();
    if (!sink(chunk)) return;
  }
}

}  // namespace revtrace::bench
