#include "processor/dead_letter.hpp"

#include <openssl/evp.h>
#include <simdjson.h>

#include "common/http.hpp"

namespace revtrace::processor {
namespace {

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

void add_string(std::string& out, std::string_view name, std::string_view value) {
  out += '"';
  out += name;
  out += "\":\"";
  common::http::append_json_escaped(out, value);
  out += '"';
}

}  // namespace

DeadLetter dead_letter_record(std::string_view reason, const rd_kafka_message_t* m) {
  const std::string_view original(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
  const std::string_view key(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
  rd_kafka_timestamp_type_t tstype;
  const std::int64_t ts = rd_kafka_message_timestamp(m, &tstype);
  const bool utf8 = simdjson::validate_utf8(original.data(), original.size());
  const bool key_utf8 = simdjson::validate_utf8(key.data(), key.size());
  DeadLetter d;
  d.key = std::string(key);
  std::string& v = d.value;
  v = "{";
  add_string(v, "reason", reason);
  v += ',';
  add_string(v, "source_topic", rd_kafka_topic_name(m->rkt));
  v += ",\"partition\":" + std::to_string(m->partition);
  v += ",\"offset\":" + std::to_string(m->offset) + ",";
  if (m->key != nullptr && key_utf8) {
    add_string(v, "key", key);
  } else {
    v += "\"key\":null";
  }
  v += ',';
  add_string(v, "original", utf8 ? std::string(original) : base64(original));
  v += ',';
  add_string(v, "original_encoding", utf8 ? "utf8" : "base64");
  v += ",\"record_timestamp\":" + std::to_string(ts < 0 ? 0 : ts) + "}";
  return d;
}

}  // namespace revtrace::processor
