#pragma once
// Validation of `POST /v1/events` bodies and their conversion into topic records
// (schemas/revtrace.web-events.v1 and revtrace.checkout-redirects.v1). Pure: no I/O.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/user_agent.hpp"

namespace revtrace::ingest {

struct RequestContext {
  std::int64_t received_at = 0;  // Unix ms, stamped by the gateway
  Device device;                 // from the User-Agent
  std::string country;           // ISO-3166 alpha-2 from a trusted header, or empty
};

enum class EventTopic : std::uint8_t { web_events, checkout_redirects };

struct EventRecord {
  std::string site_id;
  EventTopic topic = EventTopic::web_events;
  std::string value;  // the record's JSON
};

struct EventParse {
  std::vector<EventRecord> records;
  int status = 202;    // 400 malformed / invalid, 404 unknown site, 413 batch too large
  std::string error;   // what is wrong, naming the field and the batch index
};

// `body`: one event object or an array of them. `site_known` says whether a site id is configured.
[[nodiscard]] EventParse parse_events(std::string_view body, const RequestContext& context,
                                      std::size_t max_batch,
                                      const std::function<bool(std::string_view)>& site_known);

// One event from the query string of `GET /v1/events.gif?...` (already percent-decoded pairs).
[[nodiscard]] EventParse parse_query_event(
    const std::vector<std::pair<std::string, std::string>>& params, const RequestContext& context,
    const std::function<bool(std::string_view)>& site_known);

// The revtrace.stripe-events.v1 record of a verified webhook body: the routing fields parsed out
// and the raw body kept byte for byte in `payload`. `error` names what is missing when the body
// is not a Stripe event (then `value` is empty).
struct StripeEventRecord {
  std::string event_id;
  std::string value;
  std::string error;
  [[nodiscard]] explicit operator bool() const noexcept { return error.empty(); }
};
[[nodiscard]] StripeEventRecord stripe_event_record(std::string_view site_id, std::string_view body,
                                                    std::int64_t received_at);

// A 26-character, time-ordered, random event id (ULID layout, Crockford base32).
[[nodiscard]] std::string new_event_id(std::int64_t unix_ms);

}  // namespace revtrace::ingest
