#include "processor/domain/sessions.hpp"

namespace revtrace::domain {

bool starts_new_session(Millis last_seen, const Touch& session_touch, const Touch& candidate) {
  if (candidate.at - last_seen > kSessionIdle) return true;
  return !is_direct(candidate) && !same_source(candidate, session_touch);
}

}  // namespace revtrace::domain
