#pragma once
// A bounded read of one topic, for commands and routes that need "everything recorded so far"
// (revtrace reconcile: which Stripe changes were already delivered; the query server: the
// Payment Links list). Not a consumer group: partitions are assigned directly and nothing is
// committed.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/config.hpp"

namespace revtrace::common::kafka {

// Reads every committed record (read_committed) of `topic` whose timestamp is >= `since_ms`
// (0 = from the beginning) up to the end of every partition as found at the start, calling
// `each(key, value)` (value empty for a tombstone). Returns an error text naming the problem, or
// "" on success. Gives up after `timeout`.
[[nodiscard]] std::string scan_topic(
    const KafkaConfig& config, const std::string& topic, std::int64_t since_ms,
    std::chrono::milliseconds timeout,
    const std::function<void(std::string_view key, std::string_view value)>& each);

}  // namespace revtrace::common::kafka
