#pragma once
// Typed field access over a simdjson DOM object that records the first problem as a precise,
// human-readable reason ("web event: missing string field visitor_id"), so every rejected record
// is dead-lettered with a message naming the field. Private to revtrace::domain.
#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace revtrace::domain::json {

class ObjectReader {
 public:
  // `what` prefixes every reason ("web event", "charge.succeeded: data.object"); `error` collects
  // the first reason (shared by nested readers).
  ObjectReader(simdjson::dom::element element, std::string what, std::string* error)
      : what_(std::move(what)), error_(error) {
    if (element.get_object().get(object_) == simdjson::SUCCESS) valid_ = true;
  }
  ObjectReader(simdjson::dom::object object, std::string what, std::string* error)
      : what_(std::move(what)), error_(error), object_(object), valid_(true) {}
  // A reader over nothing (a missing or null nested object): every optional read is empty.
  ObjectReader(std::string what, std::string* error) : what_(std::move(what)), error_(error) {}

  [[nodiscard]] bool is_object() const noexcept { return valid_; }
  [[nodiscard]] bool ok() const noexcept { return error_->empty(); }

  [[nodiscard]] bool has(std::string_view key) const {
    simdjson::dom::element e;
    return valid_ && object_.at_key(key).get(e) == simdjson::SUCCESS && !e.is_null();
  }

  // A string that must be present (and non-empty when `non_empty`).
  std::string_view required_string(std::string_view key, bool non_empty = true) {
    simdjson::dom::element e;
    if (!valid_ || object_.at_key(key).get(e) != simdjson::SUCCESS || e.is_null()) {
      fail("missing string field " + std::string(key));
      return {};
    }
    std::string_view s;
    if (e.get_string().get(s) != simdjson::SUCCESS) {
      fail("field " + std::string(key) + " is not a string");
      return {};
    }
    if (non_empty && s.empty()) fail("field " + std::string(key) + " is empty");
    return s;
  }
  // A string that may be absent or null (then empty); any other type is an error.
  std::string_view optional_string(std::string_view key) {
    simdjson::dom::element e;
    if (!valid_ || object_.at_key(key).get(e) != simdjson::SUCCESS || e.is_null()) return {};
    std::string_view s;
    if (e.get_string().get(s) != simdjson::SUCCESS) {
      fail("field " + std::string(key) + " is not a string");
      return {};
    }
    return s;
  }
  // A Stripe reference: an id string, or an expanded object carrying "id"; empty when absent/null.
  std::string_view optional_id(std::string_view key) {
    simdjson::dom::element e;
    if (!valid_ || object_.at_key(key).get(e) != simdjson::SUCCESS || e.is_null()) return {};
    std::string_view s;
    if (e.get_string().get(s) == simdjson::SUCCESS) return s;
    simdjson::dom::object o;
    simdjson::dom::element id;
    if (e.get_object().get(o) == simdjson::SUCCESS && o.at_key("id").get(id) == simdjson::SUCCESS &&
        id.get_string().get(s) == simdjson::SUCCESS) {
      return s;
    }
    fail("field " + std::string(key) + " is neither an id string nor an object with an id");
    return {};
  }
  std::optional<std::int64_t> required_int(std::string_view key) {
    auto v = optional_int(key);
    if (!v && ok()) fail("missing integer field " + std::string(key));
    return v;
  }
  std::optional<std::int64_t> optional_int(std::string_view key) {
    simdjson::dom::element e;
    if (!valid_ || object_.at_key(key).get(e) != simdjson::SUCCESS || e.is_null())
      return std::nullopt;
    std::int64_t v = 0;
    if (e.get_int64().get(v) != simdjson::SUCCESS) {
      fail("field " + std::string(key) + " is not an integer");
      return std::nullopt;
    }
    return v;
  }
  std::optional<bool> optional_bool(std::string_view key) {
    simdjson::dom::element e;
    if (!valid_ || object_.at_key(key).get(e) != simdjson::SUCCESS || e.is_null())
      return std::nullopt;
    bool v = false;
    if (e.get_bool().get(v) != simdjson::SUCCESS) {
      fail("field " + std::string(key) + " is not a boolean");
      return std::nullopt;
    }
    return v;
  }
  std::optional<bool> required_bool(std::string_view key) {
    auto v = optional_bool(key);
    if (!v && ok()) fail("missing boolean field " + std::string(key));
    return v;
  }
  // A nested object; absent or null gives an empty reader, another type is an error.
  ObjectReader optional_object(std::string_view key) {
    const std::string what = what_ + "." + std::string(key);
    simdjson::dom::element e;
    if (!valid_ || object_.at_key(key).get(e) != simdjson::SUCCESS || e.is_null())
      return {what, error_};
    if (e.type() != simdjson::dom::element_type::OBJECT) {
      fail("field " + std::string(key) + " is not an object");
      return {what, error_};
    }
    return {e, what, error_};
  }
  ObjectReader required_object(std::string_view key) {
    if (!has(key) && ok()) fail("missing object field " + std::string(key));
    return optional_object(key);
  }
  [[nodiscard]] simdjson::dom::object object() const noexcept { return object_; }
  [[nodiscard]] const std::string& what() const noexcept { return what_; }

  void fail(const std::string& reason) {
    if (error_->empty()) *error_ = what_ + ": " + reason;
  }

 private:
  std::string what_;
  std::string* error_;
  simdjson::dom::object object_{};
  bool valid_ = false;
};

}  // namespace revtrace::domain::json
