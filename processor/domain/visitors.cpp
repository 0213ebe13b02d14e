#include "processor/domain/visitors.hpp"

#include <algorithm>
#include <stdexcept>

#include "processor/domain/codec.hpp"
#include "processor/domain/sessions.hpp"

namespace revtrace::domain {

namespace {
// 2: + sessions started; 3: + pixel session ids, recent event ids as 8-byte hashes (a visitor's
// dedup window is 64 ids: a 64-bit collision there is negligible, and ids are most of its bytes).
constexpr std::uint64_t kFormat = 3;

// FNV-1a, 64 bits: stable across builds and platforms (the hashes are stored).
std::uint64_t event_hash(std::string_view id) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}
}

VisitorTimelines::VisitorTimelines(StateStore& store, std::string site)
    : store_(store), site_(std::move(site)) {}

std::string VisitorTimelines::key(std::string_view visitor) const {
  std::string k = "vis/";
  k += site_;
  k += '/';
  k += visitor;
  return k;
}

VisitorTimelines::State VisitorTimelines::load(std::string_view visitor) const {
  State s;
  const auto k = key(visitor);
  const auto v = store_.get(k);
  if (!v) return s;
  codec::Reader r(*v);
  const auto format = r.u64();
  if (format != kFormat && format != 2)
    throw std::runtime_error("revtrace::domain: corrupt visitor state at key " + k);
  s.last_seen = r.i64();
  s.started = r.u64();
  const auto n_events = r.count();
  if (format == 2) {
    for (std::uint64_t i = 0; i < n_events && r.ok(); ++i) {
      s.recent_events.push_back(event_hash(r.str()));
    }
  } else {
    const auto blob = r.str();
    if (blob.size() != n_events * 8) {
      throw std::runtime_error("revtrace::domain: corrupt visitor state at key " + k);
    }
    for (std::uint64_t i = 0; i < n_events; ++i) {
      std::uint64_t h = 0;
      for (int b = 7; b >= 0; --b) h = (h << 8) | static_cast<unsigned char>(blob[i * 8 + b]);
      s.recent_events.push_back(h);
    }
  }
  const auto n_sessions = r.count();
  for (std::uint64_t i = 0; i < n_sessions && r.ok(); ++i) s.sessions.push_back(r.touch());
  if (format == 2) {
    s.pixel_sessions_complete = false;  // not recorded then: such a visitor never expires
  } else {
    s.pixel_sessions_complete = r.u64() == 1;
    const auto n_pixel = r.count();
    for (std::uint64_t i = 0; i < n_pixel && r.ok(); ++i) s.pixel_sessions.push_back(r.str());
  }
  if (!r.ok() || !r.done() || s.started < s.sessions.size())
    throw std::runtime_error("revtrace::domain: corrupt visitor state at key " + k);
  return s;
}

void VisitorTimelines::save(std::string_view visitor, const State& s) {
  codec::Writer w;
  w.u64(kFormat);
  w.i64(s.last_seen);
  w.u64(s.started);
  w.u64(s.recent_events.size());
  std::string blob;
  blob.reserve(s.recent_events.size() * 8);
  for (auto h : s.recent_events) {
    for (int b = 0; b < 8; ++b) blob.push_back(static_cast<char>((h >> (8 * b)) & 0xff));
  }
  w.str(blob);
  w.u64(s.sessions.size());
  for (const auto& t : s.sessions) w.touch(t);
  w.u64(s.pixel_sessions_complete ? 1 : 0);
  w.u64(s.pixel_sessions.size());
  for (const auto& p : s.pixel_sessions) w.str(p);
  store_.put(key(visitor), w.bytes());
}

VisitorTimelines::Added VisitorTimelines::add_pageview(std::string_view visitor,
                                                       std::string_view event_id,
                                                       const Touch& touch) {
  // The hot path of the engine (every pageview): the visitor's value is edited as bytes — the
  // header and event hashes rewritten, the session touches copied as they are, a new touch
  // appended — without decoding the touches. It writes exactly what load() + the update +
  // save() below would (the tests compare both).
  thread_local std::string value;
  thread_local codec::Writer w;
  const auto k = key(visitor);
  if (!store_.read(k, value)) return add_pageview_decoded(visitor, event_id, touch);
  codec::Reader r(value);
  if (r.u64() != kFormat) return add_pageview_decoded(visitor, event_id, touch);
  const auto corrupt_value = [&] {
    throw std::runtime_error("revtrace::domain: corrupt visitor state at key " + k);
  };
  const Millis last_seen = r.i64();
  const std::uint64_t started = r.u64();
  const std::uint64_t n_events = r.count();
  const std::string_view blob = r.view();
  if (!r.ok() || blob.size() != n_events * 8) corrupt_value();
  const std::uint64_t n_sessions = r.count();
  const char* const sessions_begin = r.rest().data();
  const char* first_end = sessions_begin;
  codec::Reader::TouchSource last{};
  for (std::uint64_t i = 0; i < n_sessions && r.ok(); ++i) {
    last = r.touch_source();
    if (i == 0) first_end = r.rest().data();
  }
  const char* const sessions_end = r.rest().data();
  const std::string_view tail = r.rest();  // pixel sessions: checked, copied as they are
  (void)r.u64();
  const std::uint64_t n_pixel = r.count();
  for (std::uint64_t i = 0; i < n_pixel && r.ok(); ++i) (void)r.view();
  if (!r.ok() || !r.done() || started < n_sessions) corrupt_value();

  Added added;
  added.previous_last_seen = last_seen;
  std::string_view events = blob;
  std::uint64_t events_after = n_events;
  std::uint64_t h = 0;
  if (!event_id.empty()) {
    h = event_hash(event_id);
    for (std::uint64_t i = 0; i < n_events; ++i) {
      std::uint64_t x = 0;
      for (int b = 7; b >= 0; --b) x = (x << 8) | static_cast<unsigned char>(blob[i * 8 + b]);
      if (x == h) {
        added.duplicate = true;
        return added;
      }
    }
    ++events_after;
    if (events_after > kRecentEvents) {
      events.remove_prefix(8);
      --events_after;
    }
  }
  bool fresh = n_sessions == 0 || touch.at - last_seen > kSessionIdle;
  if (!fresh && !is_direct(touch)) {
    fresh = !(touch.source == last.source && touch.medium == last.medium &&
              touch.campaign == last.campaign && touch.term == last.term &&
              touch.content == last.content && touch.click_id == last.click_id);
  }
  const Millis new_last_seen = fresh ? touch.at : std::max(last_seen, touch.at);
  std::string_view kept_sessions(sessions_begin, static_cast<std::size_t>(sessions_end - sessions_begin));
  std::uint64_t sessions_after = n_sessions;
  if (fresh) {
    ++sessions_after;
    if (sessions_after > kMaxSessions) {
      kept_sessions.remove_prefix(static_cast<std::size_t>(first_end - sessions_begin));
      --sessions_after;
    }
  }
  w.clear();
  w.u64(kFormat);
  w.i64(new_last_seen);
  w.u64(started + (fresh ? 1 : 0));
  w.u64(events_after);
  w.u64(events.size() + (event_id.empty() ? 0 : 8));
  w.raw(events);
  if (!event_id.empty()) {
    char bytes[8];
    for (int b = 0; b < 8; ++b) bytes[b] = static_cast<char>((h >> (8 * b)) & 0xff);
    w.raw(std::string_view(bytes, 8));
  }
  w.u64(sessions_after);
  w.raw(kept_sessions);
  if (fresh) w.touch(touch);
  w.raw(tail);
  store_.put(k, w.bytes());
  added.new_session = fresh;
  added.last_seen = new_last_seen;
  return added;
}

VisitorTimelines::Added VisitorTimelines::add_pageview_decoded(std::string_view visitor,
                                                               std::string_view event_id,
                                                               const Touch& touch) {
  auto s = load(visitor);
  Added added;
  added.previous_last_seen = s.last_seen;
  if (!event_id.empty()) {
    const auto h = event_hash(event_id);
    if (std::find(s.recent_events.begin(), s.recent_events.end(), h) != s.recent_events.end()) {
      added.duplicate = true;
      return added;
    }
    s.recent_events.push_back(h);
    if (s.recent_events.size() > kRecentEvents) s.recent_events.erase(s.recent_events.begin());
  }
  if (s.sessions.empty() || starts_new_session(s.last_seen, s.sessions.back(), touch)) {
    s.sessions.push_back(touch);
    ++s.started;
    if (s.sessions.size() > kMaxSessions) s.sessions.erase(s.sessions.begin());
    s.last_seen = touch.at;
    added.new_session = true;
  } else {
    s.last_seen = std::max(s.last_seen, touch.at);
  }
  added.last_seen = s.last_seen;
  save(visitor, s);
  return added;
}

void VisitorTimelines::add_pixel_session(std::string_view visitor, std::string_view session) {
  auto s = load(visitor);
  if (s.sessions.empty() || !s.pixel_sessions_complete) return;  // no timeline, or not tracked
  if (s.pixel_sessions.size() >= kMaxPixelSessions) {
    s.pixel_sessions_complete = false;
    s.pixel_sessions.clear();
  } else {
    s.pixel_sessions.emplace_back(session);
  }
  save(visitor, s);
}

VisitorTimelines::ExpiryFacts VisitorTimelines::expiry_facts(std::string_view visitor) const {
  ExpiryFacts f;
  auto s = load(visitor);
  if (s.sessions.empty()) return f;  // a timeline always has a session
  f.exists = true;
  f.last_seen = s.last_seen;
  f.sessions_complete = s.pixel_sessions_complete;
  f.pixel_sessions = std::move(s.pixel_sessions);
  return f;
}

void VisitorTimelines::erase(std::string_view visitor) { store_.erase(key(visitor)); }

std::vector<Touch> VisitorTimelines::touches(std::string_view visitor) const {
  return load(visitor).sessions;
}

std::vector<VisitorTimelines::Session> VisitorTimelines::sessions(std::string_view visitor) const {
  auto s = load(visitor);
  std::vector<Session> out;
  out.reserve(s.sessions.size());
  const std::uint64_t first = s.started - s.sessions.size();
  for (std::size_t i = 0; i < s.sessions.size(); ++i) {
    out.push_back({first + i, std::move(s.sessions[i])});
  }
  return out;
}

}  // namespace revtrace::domain
