#pragma once
// Sessionisation (processor/domain/README.md, "Sessions"): a visitor's pageviews with no gap over
// 30 minutes; a pageview with a traffic source (not direct) that differs from the session's
// starts a new session.
#include "processor/domain/touch.hpp"

namespace revtrace::domain {

inline constexpr Millis kSessionIdle = 30 * 60 * 1000;

// A pageview with touch `candidate` (at candidate.at) after a session last seen at `last_seen`
// whose landing touch was `session_touch`: a new session when the gap is over kSessionIdle
// (exactly 30:00 continues), or when the candidate carries a traffic source (not is_direct) that
// is not same_source as the session's. A direct pageview never splits a session, so internal
// navigation keeps a campaign session's touch. A candidate earlier than last_seen (events out of
// order) is not idle.
[[nodiscard]] bool starts_new_session(Millis last_seen, const Touch& session_touch,
                                      const Touch& candidate);

}  // namespace revtrace::domain
