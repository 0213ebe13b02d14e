#include "ingest/event_parser.hpp"

#include <simdjson.h>

#include <array>
#include <charconv>
#include <random>

#include "common/http.hpp"

namespace revtrace::ingest {
namespace {

constexpr std::size_t kMaxDepth = 16;
constexpr std::size_t kMaxString = 4096;

bool valid_site_id(std::string_view s) {
  if (s.empty() || s.size() > 100) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  }
  return true;
}

bool valid_checkout_session(std::string_view s) {
  if (!s.starts_with("cs_") || s.size() < 4 || s.size() > 255) return false;
  for (char c : s.substr(3)) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

class RecordWriter {
 public:
  void str(std::string_view name, std::string_view value) {
    key(name);
    out_ += '"';
    common::http::append_json_escaped(out_, value);
    out_ += '"';
  }
  void opt(std::string_view name, std::string_view value) {
    if (!value.empty()) str(name, value);
  }
  void num(std::string_view name, std::int64_t value) {
    key(name);
    out_ += std::to_string(value);
  }
  void raw(std::string_view name, std::string_view json) {
    key(name);
    out_ += json;
  }
  std::string finish() {
    out_ += '}';
    return std::move(out_);
  }

 private:
  void key(std::string_view name) {
    out_ += out_.size() == 1 ? "\"" : ",\"";
    out_ += name;
    out_ += "\":";
  }
  std::string out_ = "{";
};

// Field access with errors that name the field and the batch index.
struct Fields {
  virtual ~Fields() = default;
  // Returns false with `error` set when present but not a string (or too long).
  virtual bool string(std::string_view name, std::string_view& out, std::string& error) const = 0;
  virtual bool integer(std::string_view name, std::int64_t& out, bool& present,
                       std::string& error) const = 0;
  virtual bool object(std::string_view name, std::string& minified, std::string& error) const = 0;
};

struct JsonFields final : Fields {
  JsonFields(simdjson::dom::object o, std::string where) : obj(o), at(std::move(where)) {}
  bool string(std::string_view name, std::string_view& out, std::string& error) const override {
    auto v = obj[name];
    if (v.error() == simdjson::NO_SUCH_FIELD || (!v.error() && v.is_null())) return true;
    if (v.error() || !v.is_string()) {
      error = at + "." + std::string(name) + " must be a string";
      return false;
    }
    out = v.get_string().value();
    if (out.size() > kMaxString) {
      error = at + "." + std::string(name) + " is longer than " + std::to_string(kMaxString) + " bytes";
      return false;
    }
    return true;
  }
  bool integer(std::string_view name, std::int64_t& out, bool& present,
               std::string& error) const override {
    auto v = obj[name];
    present = false;
    if (v.error() == simdjson::NO_SUCH_FIELD || (!v.error() && v.is_null())) return true;
    if (v.error() || !v.is_int64()) {
      error = at + "." + std::string(name) + " must be an integer (Unix milliseconds)";
      return false;
    }
    out = v.get_int64().value();
    present = true;
    return true;
  }
  bool object(std::string_view name, std::string& minified, std::string& error) const override {
    auto v = obj[name];
    if (v.error() == simdjson::NO_SUCH_FIELD || (!v.error() && v.is_null())) return true;
    if (v.error() || !v.is_object()) {
      error = at + "." + std::string(name) + " must be an object";
      return false;
    }
    minified = simdjson::minify(v.value());
    return true;
  }
  simdjson::dom::object obj;
  std::string at;
};

struct QueryFields final : Fields {
  explicit QueryFields(const std::vector<std::pair<std::string, std::string>>& p) : params(p) {}
  const std::string* find(std::string_view name) const {
    for (const auto& [k, v] : params) {
      if (k == name) return &v;
    }
    return nullptr;
  }
  bool string(std::string_view name, std::string_view& out, std::string& error) const override {
    if (const auto* v = find(name)) {
      if (v->size() > kMaxString) {
        error = "parameter " + std::string(name) + " is too long";
        return false;
      }
      // JSON bodies are validated by simdjson; percent-decoded parameters are checked here.
      if (!simdjson::validate_utf8(v->data(), v->size())) {
        error = "parameter " + std::string(name) + " is not valid UTF-8";
        return false;
      }
      out = *v;
    }
    return true;
  }
  bool integer(std::string_view name, std::int64_t& out, bool& present,
               std::string& error) const override {
    present = false;
    const auto* v = find(name);
    if (v == nullptr || v->empty()) return true;
    auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
    if (ec != std::errc{} || ptr != v->data() + v->size()) {
      error = "parameter " + std::string(name) + " must be an integer";
      return false;
    }
    present = true;
    return true;
  }
  bool object(std::string_view, std::string&, std::string&) const override { return true; }
  const std::vector<std::pair<std::string, std::string>>& params;
};

// Builds one record from the fields of one event; false with status/error on a bad event.
bool build(const Fields& f, const std::string& where, const RequestContext& ctx,
           const std::function<bool(std::string_view)>& site_known, EventParse& out) {
  std::string error;
  auto fail = [&](int status, std::string message) {
    out.status = status;
    out.error = std::move(message);
    return false;
  };
  std::string_view type, site, visitor, session, event_id, url, referrer, title, screen, language,
      timezone, email, name, checkout;
  for (auto [field, target] : std::initializer_list<std::pair<std::string_view, std::string_view*>>{
           {"type", &type},         {"site_id", &site},         {"visitor_id", &visitor},
           {"session_id", &session}, {"event_id", &event_id},   {"url", &url},
           {"referrer", &referrer}, {"title", &title},          {"screen", &screen},
           {"language", &language}, {"timezone", &timezone},   {"email", &email},
           {"name", &name},         {"checkout_session_id", &checkout}}) {
    if (!f.string(field, *target, error)) return fail(400, error);
  }
  std::int64_t occurred_at = 0;
  bool has_occurred = false;
  if (!f.integer("occurred_at", occurred_at, has_occurred, error)) return fail(400, error);
  std::string traits, props;
  if (!f.object("traits", traits, error) || !f.object("props", props, error)) return fail(400, error);

  if (type.empty()) return fail(400, where + ".type is required");
  const bool pageview = type == "pageview";
  const bool identify = type == "identify";
  const bool custom = type == "custom";
  const bool redirect = type == "checkout_redirect";
  if (!pageview && !identify && !custom && !redirect) {
    return fail(400, where + ".type must be one of pageview, identify, custom, checkout_redirect");
  }
  if (site.empty()) return fail(400, where + ".site_id is required");
  if (!valid_site_id(site)) return fail(400, where + ".site_id may only contain letters, digits, '-' and '_'");
  if (!site_known(site)) return fail(404, where + ".site_id '" + std::string(site) + "' is not a configured site");
  if (visitor.empty()) return fail(400, where + ".visitor_id is required");
  if (visitor.size() > 200) return fail(400, where + ".visitor_id is longer than 200 characters");
  if (event_id.size() > 100) return fail(400, where + ".event_id is longer than 100 characters");
  if ((pageview || redirect) && url.empty()) return fail(400, where + ".url is required for " + std::string(type));
  if (!url.empty() && !(url.starts_with("http://") || url.starts_with("https://"))) {
    return fail(400, where + ".url must be an absolute http(s) URL");
  }
  if (identify && (email.empty() || email.find('@') == std::string_view::npos || email.size() > 320)) {
    return fail(400, where + ".email is required for identify and must be an email address");
  }
  if (custom && name.empty()) return fail(400, where + ".name is required for custom events");
  if (redirect && !valid_checkout_session(checkout)) {
    return fail(400, where + ".checkout_session_id must be a Stripe Checkout Session id (cs_...)");
  }
  if (has_occurred && occurred_at < 0) return fail(400, where + ".occurred_at must be positive");

  RecordWriter w;
  w.str("event_id", event_id.empty() ? new_event_id(ctx.received_at) : std::string(event_id));
  w.str("type", type);
  w.str("site_id", site);
  w.str("visitor_id", visitor);
  w.opt("session_id", session);
  if (has_occurred) w.num("occurred_at", occurred_at);
  w.num("received_at", ctx.received_at);
  if (redirect) w.str("checkout_session_id", checkout);
  w.opt("url", url);
  if (!redirect) {
    w.opt("referrer", referrer);
    w.opt("title", title);
    if (!ctx.device.browser.empty()) {
      std::string device = "{\"browser\":\"";
      common::http::append_json_escaped(device, ctx.device.browser);
      device += "\",\"os\":\"";
      common::http::append_json_escaped(device, ctx.device.os);
      device += "\",\"device_class\":\"";
      common::http::append_json_escaped(device, ctx.device.device_class);
      device += "\"}";
      w.raw("device", device);
    }
    w.opt("country", ctx.country);
    w.opt("screen", screen);
    w.opt("language", language);
    w.opt("timezone", timezone);
    if (identify) {
      w.str("email", email);
      if (!traits.empty()) w.raw("traits", traits);
    }
    if (custom) {
      w.str("name", name);
      if (!props.empty()) w.raw("props", props);
    }
  }
  out.records.push_back({std::string(site),
                         redirect ? EventTopic::checkout_redirects : EventTopic::web_events,
                         w.finish()});
  return true;
}

}  // namespace

std::string new_event_id(std::int64_t unix_ms) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id(26, '0');
  auto t = static_cast<std::uint64_t>(unix_ms);
  for (int i = 9; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = kAlphabet[t & 31];
    t >>= 5;
  }
  std::uint64_t r1 = rng();
  std::uint64_t r2 = rng();
  for (int i = 10; i < 26; ++i) {
    std::uint64_t& r = i < 18 ? r1 : r2;
    id[static_cast<std::size_t>(i)] = kAlphabet[r & 31];
    r >>= 5;
  }
  return id;
}

EventParse parse_events(std::string_view body, const RequestContext& context, std::size_t max_batch,
                        const std::function<bool(std::string_view)>& site_known) {
  EventParse out;
  thread_local simdjson::dom::parser parser;
  if (parser.capacity() < body.size() || parser.max_depth() != kMaxDepth) {
    if (parser.allocate(std::max<std::size_t>(body.size(), 64 * 1024), kMaxDepth)) {
      out.status = 413;
      out.error = "body too large";
      return out;
    }
  }
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    out.status = 400;
    if (err == simdjson::UTF8_ERROR) {
      out.error = "the body is not valid UTF-8";
    } else if (err == simdjson::DEPTH_ERROR) {
      out.error = "the body is nested deeper than " + std::to_string(kMaxDepth) + " levels";
    } else if (err == simdjson::EMPTY) {
      out.error = "the body is empty";
    } else {
      out.error = std::string("the body is not valid JSON: ") + simdjson::error_message(err);
    }
    return out;
  }
  if (doc.is_object()) {
    build(JsonFields(doc.get_object().value(), "event"), "event", context, site_known, out);
  } else if (doc.is_array()) {
    simdjson::dom::array arr = doc.get_array();
    if (arr.size() == 0) {
      out.status = 400;
      out.error = "the batch is empty";
      return out;
    }
    if (arr.size() > max_batch) {
      out.status = 413;
      out.error = "a batch holds at most " + std::to_string(max_batch) + " events";
      return out;
    }
    std::size_t i = 0;
    for (auto item : arr) {
      const std::string where = "events[" + std::to_string(i++) + "]";
      if (!item.is_object()) {
        out.status = 400;
        out.error = where + " must be an object";
        break;
      }
      if (!build(JsonFields(item.get_object().value(), where), where, context, site_known, out)) break;
    }
  } else {
    out.status = 400;
    out.error = "the body must be an event object or an array of events";
  }
  if (out.status != 202) out.records.clear();
  return out;
}

StripeEventRecord stripe_event_record(std::string_view site_id, std::string_view body,
                                      std::int64_t received_at) {
  StripeEventRecord out;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view id, type;
  std::int64_t created = 0;
  bool livemode = false;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    out.error = std::string("the body is not valid JSON: ") + simdjson::error_message(err);
    return out;
  }
  if (!doc.is_object()) {
    out.error = "the body is not a Stripe event object";
  } else if (doc["id"].get(id) || !id.starts_with("evt_")) {
    out.error = "the event has no id evt_...";
  } else if (doc["type"].get(type) || type.empty()) {
    out.error = "the event has no type";
  } else if (doc["created"].get(created)) {
    out.error = "the event has no integer created";
  } else if (doc["livemode"].get(livemode)) {
    out.error = "the event has no boolean livemode";
  } else if (!doc["data"]["object"].is_object()) {
    out.error = "the event has no data.object";
  }
  if (!out.error.empty()) return out;
  std::string_view api_version;
  const bool has_version = !doc["api_version"].get(api_version);
  std::string& record = out.value;
  record.reserve(body.size() + body.size() / 8 + 256);
  record = "{\"site_id\":\"";
  common::http::append_json_escaped(record, site_id);
  record += "\",\"source\":\"webhook\",\"received_at\":" + std::to_string(received_at) + ",\"event_id\":\"";
  common::http::append_json_escaped(record, id);
  record += "\",\"event_type\":\"";
  common::http::append_json_escaped(record, type);
  record += "\",\"livemode\":";
  record += livemode ? "true" : "false";
  record += ",\"api_version\":";
  if (has_version) {
    record += "\"";
    common::http::append_json_escaped(record, api_version);
    record += "\"";
  } else {
    record += "null";
  }
  record += ",\"created\":" + std::to_string(created) + ",\"payload\":\"";
  common::http::append_json_escaped(record, body);
  record += "\"}";
  out.event_id = std::string(id);
  return out;
}

EventParse parse_query_event(const std::vector<std::pair<std::string, std::string>>& params,
                             const RequestContext& context,
                             const std::function<bool(std::string_view)>& site_known) {
  EventParse out;
  build(QueryFields(params), "event", context, site_known, out);
  if (out.status != 202) out.records.clear();
  return out;
}

}  // namespace revtrace::ingest
