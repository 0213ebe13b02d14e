#include "tests/support/workload.hpp"

#include <algorithm>
#include <random>

namespace revtrace::testing {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string stripe_envelope(const std::string& site, const std::string& id,
                            const std::string& type, std::int64_t created,
                            const std::string& object, std::int64_t received) {
  const std::string payload = R"({"id":")" + id +
                              R"(","object":"event","api_version":"2025-03-31.basil","created":)" +
                              std::to_string(created) + R"(,"livemode":true,"type":")" + type +
                              R"(","data":{"object":)" + object + "}}";
  return R"({"site_id":")" + site + R"(","source":"webhook","received_at":)" +
         std::to_string(received) + R"(,"event_id":")" + id + R"(","event_type":")" + type +
         R"(","livemode":true,"api_version":"2025-03-31.basil","created":)" +
         std::to_string(created) + R"(,"payload":")" + escape(payload) + "\"}";
}

Workload make_workload(std::uint32_t seed, int sites, int visitors_per_site,
                       const std::string& site_prefix) {
  static const char* kLandings[] = {
      "?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
      "?gclid=abc&utm_source=google&utm_medium=cpc&utm_campaign=brand",
      "?utm_source=facebook&utm_medium=paid_social&utm_campaign=retarget",
      "?ref=partner7",
      "",
  };
  static const char* kReferrers[] = {"", "", "", "", "https://www.google.com/"};
  std::mt19937 rng(seed);
  Workload w;
  const std::int64_t base = 1790000000000;  // 2026-09-21
  for (int s = 0; s < sites; ++s) {
    const std::string site = site_prefix + std::to_string(s);
    w.sites.push_back(site);
    for (int v = 0; v < visitors_per_site; ++v) {
      const std::string visitor = site + "-v" + std::to_string(v);
      std::int64_t t = base + static_cast<std::int64_t>(rng() % 86400000u) * 10;
      const int sessions = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < sessions; ++k) {
        const int landing = static_cast<int>(rng() % 5);
        const int views = 1 + static_cast<int>(rng() % 3);
        for (int p = 0; p < views; ++p) {
          const std::string url = "https://" + site + ".example/p" + std::to_string(p) +
                                  (p == 0 ? kLandings[landing] : "");
          const std::string ref = p == 0 ? kReferrers[landing] : "";
          w.records.push_back(
              {"revtrace.web-events.v1", site,
               R"({"event_id":")" + visitor + "-" + std::to_string(k) + "-" + std::to_string(p) +
                   R"(","type":"pageview","site_id":")" + site + R"(","visitor_id":")" + visitor +
                   R"(","occurred_at":)" + std::to_string(t) + R"(,"received_at":)" +
                   std::to_string(t + 20) + R"(,"url":")" + url + "\"" +
                   (ref.empty() ? std::string() : R"(,"referrer":")" + ref + "\"") +
                   R"(,"device":{"browser":"Chrome","os":"macOS","device_class":"desktop"},"country":"DE"})"});
          t += 30000;
        }
        t += 3 * 3600 * 1000;
      }
      if (rng() % 10 != 0) continue;  // 10 % of visitors pay
      ++w.payments;
      const std::string n = site + "_" + std::to_string(v);
      const std::int64_t amount = 100 + static_cast<std::int64_t>(rng() % 9900);
      const std::int64_t paid_s = t / 1000 + 60;
      const bool by_metadata = rng() % 2 == 0;
      const std::string session = R"({"id":"cs_)" + n + R"(","object":"checkout.session","amount_total":)" +
          std::to_string(amount) +
          R"(,"currency":"usd","payment_status":"paid","status":"complete","mode":"payment","livemode":true,"client_reference_id":null,"customer":null,"customer_details":{"email":"b)" +
          n + R"(@example.com"},"payment_intent":"pi_)" + n +
          R"(","payment_link":null,"metadata":{)" +
          (by_metadata ? R"("revtrace_visitor_id":")" + visitor + "\"" : std::string()) +
          R"(},"created":)" + std::to_string(paid_s) + "}";
      const auto event = stripe_envelope(site, "evt_cs_" + n, "checkout.session.completed", paid_s, session, t);
      w.records.push_back({"revtrace.stripe-events.v1", site, event});
      if (rng() % 4 == 0) w.records.push_back({"revtrace.stripe-events.v1", site, event});  // duplicate
      if (!by_metadata) {
        // The success page redirect links the session to the visitor.
        w.records.push_back({"revtrace.checkout-redirects.v1", site,
                             R"({"event_id":"r-)" + n + R"(","type":"checkout_redirect","site_id":")" +
                                 site + R"(","visitor_id":")" + visitor +
                                 R"(","checkout_session_id":"cs_)" + n + R"(","url":"https://)" +
                                 site + R"(.example/thanks?session_id=cs_)" + n +
                                 R"(","received_at":)" + std::to_string(t + 90000) + "}"});
      }
      if (rng() % 5 == 0) {
        const std::string charge = R"({"id":"ch_)" + n + R"(","object":"charge","amount":)" +
            std::to_string(amount) + R"(,"amount_captured":)" + std::to_string(amount) +
            R"(,"amount_refunded":)" + std::to_string(amount / 3) +
            R"(,"refunded":false,"currency":"usd","customer":null,"livemode":true,"paid":true,"status":"succeeded","payment_intent":"pi_)" +
            n + R"(","billing_details":{"email":null},"receipt_email":null,"metadata":{},"created":)" +
            std::to_string(paid_s) + "}";
        w.records.push_back({"revtrace.stripe-events.v1", site,
                             stripe_envelope(site, "evt_rf_" + n, "charge.refunded", paid_s + 3600, charge, t)});
      }
    }
  }
  // Interleave the sites and event kinds deterministically, as concurrent traffic would.
  // (Web evidence before payments is not assumed anywhere: the engine is order-independent.)
  std::shuffle(w.records.begin(), w.records.end(), rng);
  return w;
}

}  // namespace revtrace::testing
