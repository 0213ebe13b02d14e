#include "projections/ad_spend.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <map>

#include "common/http.hpp"
#include "projections/read_model.hpp"

namespace revtrace::projections {
namespace {

constexpr std::size_t kMaxEntries = 10000;

std::string validate(AdSpendEntry& e) {
  if (!valid_day(e.day)) return "day must be a date YYYY-MM-DD";
  if (e.amount < 0) return "amount must be a non-negative integer in minor units";
  if (e.currency.size() != 3 ||
      !std::all_of(e.currency.begin(), e.currency.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
    return "currency must be a lower-case ISO 4217 code such as usd";
  }
  if (e.channel.empty() && e.source.empty() && e.campaign.empty()) {
    return "at least one of channel, source, campaign is required";
  }
  for (const auto* s : {&e.channel, &e.source, &e.campaign}) {
    if (s->size() > 200) return "channel, source and campaign are at most 200 characters";
    if (s->find('|') != std::string::npos) return "channel, source and campaign may not contain '|'";
  }
  return {};
}

void add_field(std::string& out, std::string_view name, std::string_view value) {
  out += '"';
  out += name;
  out += "\":\"";
  common::http::append_json_escaped(out, value);
  out += "\",";
}

}  // namespace

std::string AdSpendEntry::key() const {
  // Live keys are what they always were; test-mode spend gets a key of its own.
  return site_id + "|" + day + "|" + channel + "|" + source + "|" + campaign + "|" + currency +
         (livemode ? "" : "|test");
}

std::string AdSpendEntry::to_json() const {
  std::string out = "{";
  add_field(out, "site_id", site_id);
  add_field(out, "day", day);
  add_field(out, "channel", channel);
  add_field(out, "source", source);
  add_field(out, "campaign", campaign);
  out += "\"amount\":" + std::to_string(amount) + ",";
  add_field(out, "currency", currency);
  out += "\"livemode\":";
  out += livemode ? "true" : "false";
  out += ",\"updated_at\":" + std::to_string(updated_at) + "}";
  return out;
}

AdSpendParse parse_ad_spend_json(std::string_view body, const std::string& site, std::int64_t now_ms) {
  AdSpendParse result;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    result.error = std::string("body is not valid JSON: ") + simdjson::error_message(err);
    return result;
  }
  simdjson::dom::array entries;
  if (doc.is_array()) {
    entries = doc.get_array();
  } else if (doc.is_object() && !doc["entries"].error() && doc["entries"].is_array()) {
    entries = doc["entries"].get_array();
  } else {
    result.error = "body must be {\"entries\": [...]} or an array of entries";
    return result;
  }
  if (entries.size() > kMaxEntries) {
    result.error = "at most " + std::to_string(kMaxEntries) + " entries per request";
    return result;
  }
  std::size_t i = 0;
  for (auto item : entries) {
    const std::string where = "entries[" + std::to_string(i++) + "]";
    if (!item.is_object()) {
      result.error = where + " must be an object";
      return result;
    }
    AdSpendEntry e;
    e.site_id = site;
    e.updated_at = now_ms;
    for (auto [name, field] : std::initializer_list<std::pair<const char*, std::string*>>{
             {"day", &e.day}, {"channel", &e.channel}, {"source", &e.source},
             {"campaign", &e.campaign}, {"currency", &e.currency}}) {
      auto v = item[name];
      if (v.error()) continue;
      if (!v.is_string()) {
        result.error = where + "." + name + " must be a string";
        return result;
      }
      *field = std::string(v.get_string().value());
    }
    auto amount = item["amount"];
    if (amount.error() || !amount.is_int64()) {
      result.error = where + ".amount must be an integer (minor units)";
      return result;
    }
    e.amount = amount.get_int64();
    if (auto live = item["livemode"]; !live.error()) {
      if (!live.is_bool()) {
        result.error = where + ".livemode must be true or false";
        return result;
      }
      e.livemode = live.get_bool();
    }
    if (auto why = validate(e); !why.empty()) {
      result.error = where + ": " + why;
      return result;
    }
    result.entries.push_back(std::move(e));
  }
  return result;
}

AdSpendParse parse_ad_spend_csv(std::string_view text, const std::string& site, std::int64_t now_ms) {
  AdSpendParse result;
  // Spreadsheet and ad-platform exports often start with a UTF-8 byte order mark.
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  // RFC 4180 fields: quotes, doubled quotes inside quotes, CRLF or LF line ends.
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      if (!(row.size() == 1 && row[0].empty())) rows.push_back(std::move(row));
      row.clear();
    } else {
      field += c;
    }
  }
  if (!field.empty() || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  if (rows.empty()) {
    result.error = "the CSV is empty";
    return result;
  }
  std::map<std::string, std::size_t> col;
  for (std::size_t i = 0; i < rows[0].size(); ++i) col[rows[0][i]] = i;
  for (const char* need : {"day", "amount", "currency"}) {
    if (!col.count(need)) {
      result.error = std::string("the CSV header has no '") + need + "' column";
      return result;
    }
  }
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const std::string where = "line " + std::to_string(r + 1);
    auto get = [&](const char* name) -> std::string {
      auto it = col.find(name);
      return it == col.end() || it->second >= rows[r].size() ? std::string() : rows[r][it->second];
    };
    AdSpendEntry e;
    e.site_id = site;
    e.updated_at = now_ms;
    e.day = get("day");
    e.channel = get("channel");
    e.source = get("source");
    e.campaign = get("campaign");
    e.currency = get("currency");
    const std::string live = get("livemode");
    if (live != "" && live != "true" && live != "false") {
      result.error = where + ": livemode must be true, false or empty (= true)";
      return result;
    }
    e.livemode = live != "false";
    const std::string amount = get("amount");
    auto [ptr, ec] = std::from_chars(amount.data(), amount.data() + amount.size(), e.amount);
    if (ec != std::errc{} || ptr != amount.data() + amount.size() || amount.empty()) {
      result.error = where + ": amount must be an integer (minor units)";
      return result;
    }
    if (auto why = validate(e); !why.empty()) {
      result.error = where + ": " + why;
      return result;
    }
    result.entries.push_back(std::move(e));
  }
  return result;
}

std::optional<AdSpendEntry> parse_ad_spend_record(std::string_view record) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(record.data(), record.size()).get(doc)) return std::nullopt;
  AdSpendEntry e;
  std::string_view s;
  for (auto [name, field] : std::initializer_list<std::pair<const char*, std::string*>>{
           {"site_id", &e.site_id}, {"day", &e.day}, {"channel", &e.channel},
           {"source", &e.source}, {"campaign", &e.campaign}, {"currency", &e.currency}}) {
    if (doc[name].get(s)) return std::nullopt;
    *field = std::string(s);
  }
  if (doc["amount"].get(e.amount) || doc["updated_at"].get(e.updated_at)) return std::nullopt;
  if (auto live = doc["livemode"]; !live.error() && live.get(e.livemode)) return std::nullopt;
  if (!validate(e).empty()) return std::nullopt;
  return e;
}

}  // namespace revtrace::projections
