// VisitorTimelines: the byte-level fast path of add_pageview writes exactly what the decoded
// reference (load, update, save) writes, over long random visits that hit every branch: new and
// returning visitors, duplicates, idle gaps, new sources mid-session, direct returns, the caps on
// recent event ids and on sessions, pixel sessions kept in the value.
#include "processor/domain/visitors.hpp"

#include <catch2/catch.hpp>
#include <random>

namespace revtrace::domain {

TEST_CASE("add_pageview's fast path writes what the decoded reference writes", "[visitors]") {
  for (std::uint32_t seed = 1; seed <= 12; ++seed) {
    std::mt19937_64 rng(seed);
    MemoryStateStore fast_store;
    MemoryStateStore reference_store;
    VisitorTimelines fast(fast_store, "site");
    VisitorTimelines reference(reference_store, "site");
    const std::vector<std::string> visitors{"v1", "v2", "v3"};
    const std::vector<std::string> sources{"", "", "google", "newsletter", "partner"};
    Millis at = 1'790'000'000'000;
    // Long enough to pass both caps for a visitor (64 event ids, 256 sessions).
    for (int i = 0; i < 1500; ++i) {
      const auto& visitor = visitors[rng() % visitors.size()];
      at += (rng() % 4 == 0) ? 31 * 60 * 1000 + static_cast<Millis>(rng() % 100000)
                             : static_cast<Millis>(rng() % 120000) - 10000;  // even backwards
      Touch t;
      t.at = at;
      t.source = sources[rng() % sources.size()];
      if (!t.source.empty()) t.medium = rng() % 2 ? "cpc" : "email";
      if (rng() % 7 == 0) t.campaign = "c" + std::to_string(rng() % 3);
      t.landing_path = "/p" + std::to_string(rng() % 5);
      t.browser = "Chrome";
      t.channel = t.source.empty() ? "Direct" : "Other";
      // Event ids repeat now and then (re-deliveries), some are empty.
      const std::string event_id =
          rng() % 10 == 0 ? std::string() : "e" + std::to_string(rng() % (i < 200 ? 150 : 5000));
      const auto a = fast.add_pageview(visitor, event_id, t);
      const auto b = reference.add_pageview_decoded(visitor, event_id, t);
      REQUIRE(a.duplicate == b.duplicate);
      REQUIRE(a.new_session == b.new_session);
      REQUIRE(a.previous_last_seen == b.previous_last_seen);
      REQUIRE(a.last_seen == b.last_seen);
      if (rng() % 50 == 0) {  // pixel sessions travel in the value's tail
        const std::string session = "s" + std::to_string(i);
        fast.add_pixel_session(visitor, session);
        reference.add_pixel_session(visitor, session);
      }
      REQUIRE(fast_store.entries() == reference_store.entries());
    }
    bool capped = false;
    for (const auto& v : visitors) {
      const auto sessions = fast.sessions(v);
      REQUIRE(sessions.size() <= VisitorTimelines::kMaxSessions);
      capped = capped || sessions.back().number >= VisitorTimelines::kMaxSessions;
      CHECK(fast.touches(v) == reference.touches(v));
    }
    CHECK(capped);  // the session cap was exercised
  }
}

}  // namespace revtrace::domain
