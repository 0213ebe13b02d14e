#pragma once
// Dead letters: a record the engine rejected is kept, with the reason, where it came from and its
// original bytes, in revtrace.dead-letter.v1 — processing goes on and nothing accepted is lost.
#include <librdkafka/rdkafka.h>

#include <string>
#include <string_view>

namespace revtrace::processor {

struct DeadLetter {
  std::string key;
  std::string value;  // JSON per schemas/revtrace.dead-letter.v1.schema.json
};

[[nodiscard]] DeadLetter dead_letter_record(std::string_view reason, const rd_kafka_message_t* m);

}  // namespace revtrace::processor
