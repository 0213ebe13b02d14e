#pragma once
// VisitorTimelines — each visitor's sessions, one touch per session, built from pageviews.
//
// Pageviews of a visitor are applied in the order of the web-events log (one site = one
// partition, so that order is fixed and a replay sees the same one). A pageview starts a new
// session when starts_new_session() says so (idle over 30 minutes, or a different traffic source);
// the session's touch is its landing pageview's touch. Only touches matter for attribution, so a
// visitor's state is small: the last pageview time, the touches of its most recent sessions, and
// the ids of its most recent events (to drop a re-delivered pageview).
//
// Bounded: at most kMaxSessions touches (oldest dropped first) and kRecentEvents event ids per
// visitor. A visitor with more sessions than that inside the lookback window loses its oldest
// touches; this is a deliberate cap on state size.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "processor/domain/state_store.hpp"
#include "processor/domain/touch.hpp"

namespace revtrace::domain {

class VisitorTimelines {
 public:
  static constexpr std::size_t kMaxSessions = 256;
  static constexpr std::size_t kRecentEvents = 64;

  // `site` scopes the state keys: "vis/<site>/<visitor>".
  VisitorTimelines(StateStore& store, std::string site);

  static constexpr std::size_t kMaxPixelSessions = 256;

  struct Added {
    bool duplicate = false;    // the event id was seen recently: nothing changed
    bool new_session = false;  // the pageview started a session: a new touch exists
    Millis previous_last_seen = 0;  // 0: the visitor had no timeline before
    Millis last_seen = 0;
  };
  // Applies one pageview whose touch (with channel) is `touch`.
  Added add_pageview(std::string_view visitor, std::string_view event_id, const Touch& touch);
  // The same on the decoded value (load, update, save): what add_pageview does for a new visitor
  // or a value of an older format, and the reference its byte-level fast path is tested against.
  Added add_pageview_decoded(std::string_view visitor, std::string_view event_id,
                             const Touch& touch);
  // The visitor's session touches, in the order they started.
  [[nodiscard]] std::vector<Touch> touches(std::string_view visitor) const;

  // A session with its number: the visitor's sessions are numbered 0, 1, 2, ... in the order
  // they started (web-events log order), for good — a number survives the cap dropping older
  // sessions. (visitor, number) names one session touch in a payment's revision basis.
  struct Session {
    std::uint64_t number = 0;
    Touch touch;
  };
  // The sessions kept (at most kMaxSessions), oldest first.
  [[nodiscard]] std::vector<Session> sessions(std::string_view visitor) const;

  // Pixel session ids that first appeared with this visitor (so expiry can remove them with it).
  // Only for a visitor with a timeline; beyond kMaxPixelSessions the list is marked incomplete.
  void add_pixel_session(std::string_view visitor, std::string_view session);
  struct ExpiryFacts {
    bool exists = false;
    Millis last_seen = 0;
    bool sessions_complete = false;  // false: more pixel sessions than kept (never expired)
    std::vector<std::string> pixel_sessions;
  };
  [[nodiscard]] ExpiryFacts expiry_facts(std::string_view visitor) const;
  // Removes the visitor's timeline.
  void erase(std::string_view visitor);

 private:
  struct State {
    Millis last_seen = 0;
    std::uint64_t started = 0;               // sessions ever started (kept or dropped)
    std::vector<std::uint64_t> recent_events;  // FNV-1a hashes of event ids, oldest first
    std::vector<Touch> sessions;             // oldest first
    bool pixel_sessions_complete = true;     // format 2 state: unknown, so false
    std::vector<std::string> pixel_sessions;
  };
  [[nodiscard]] State load(std::string_view visitor) const;
  void save(std::string_view visitor, const State& s);
  [[nodiscard]] std::string key(std::string_view visitor) const;
  StateStore& store_;
  std::string site_;
};

}  // namespace revtrace::domain
