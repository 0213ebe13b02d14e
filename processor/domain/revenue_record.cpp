#include "processor/domain/revenue_record.hpp"

namespace revtrace::domain {

namespace {

void append_nullable(std::string& out, std::string_view s) {
  if (s.empty()) {
    out += "null";
  } else {
    append_json_string(out, s);
  }
}

void field(std::string& out, std::string_view name) {
  out += '"';
  out += name;
  out += "\":";
}

std::string head(const RevenueRecord& r) {
  std::string out = "{";
  field(out, "site_id");
  append_json_string(out, r.site_id);
  out += ',';
  field(out, "payment_key");
  append_json_string(out, r.payment_key);
  out += ',';
  return out;
}

std::string tail(const RevenueRecord& r) {
  std::string out;
  field(out, "livemode");
  out += r.livemode ? "true" : "false";
  out += ',';
  field(out, "revenue_type");
  out += "\"cash\",";
  field(out, "amount");
  out += std::to_string(r.amount);
  out += ',';
  field(out, "currency");
  append_json_string(out, r.currency);
  out += ',';
  field(out, "refunded");
  out += std::to_string(r.refunded);
  out += ',';
  field(out, "net");
  out += std::to_string(r.amount - r.refunded);
  out += ',';
  field(out, "paid_at");
  out += std::to_string(r.paid_at);
  out += ',';
  field(out, "method");
  append_json_string(out, r.method);
  out += ',';
  field(out, "stripe");
  out += '{';
  const std::pair<std::string_view, const std::string*> ids[] = {
      {"checkout_session", &r.checkout_session},
      {"payment_intent", &r.payment_intent},
      {"charge", &r.charge},
      {"invoice", &r.invoice},
      {"subscription", &r.subscription},
      {"customer", &r.customer},
      {"payment_link", &r.payment_link}};
  bool first = true;
  for (const auto& [name, value] : ids) {
    if (!first) out += ',';
    first = false;
    field(out, name);
    append_nullable(out, *value);
  }
  out += "},";
  field(out, "visitor_ids");
  out += '[';
  for (std::size_t i = 0; i < r.visitor_ids.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, r.visitor_ids[i]);
  }
  out += "],";
  field(out, "email_hash");
  append_nullable(out, r.email_hash);
  out += ',';
  field(out, "touches");
  out += '[';
  for (std::size_t i = 0; i < r.touches.size(); ++i) {
    const Touch& t = r.touches[i];
    if (i) out += ',';
    out += '{';
    field(out, "at");
    out += std::to_string(t.at);
    const std::pair<std::string_view, const std::string*> fields[] = {
        {"channel", &t.channel},
        {"source", &t.source},
        {"medium", &t.medium},
        {"campaign", &t.campaign},
        {"term", &t.term},
        {"content", &t.content},
        {"click_id", &t.click_id},
        {"referrer", &t.referrer},
        {"landing_path", &t.landing_path},
        {"browser", &t.browser},
        {"os", &t.os},
        {"device_class", &t.device_class},
        {"country", &t.country}};
    for (const auto& [name, value] : fields) {
      out += ',';
      field(out, name);
      append_nullable(out, *value);
    }
    out += '}';
  }
  out += "],";
  field(out, "credits");
  out += '{';
  for (std::size_t m = 0; m < kAllModels.size(); ++m) {
    if (m) out += ',';
    field(out, model_name(kAllModels[m]));
    out += '[';
    const auto& c = r.credits[m];
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (i) out += ',';
      out += std::to_string(c[i]);
    }
    out += ']';
  }
  out += "}}";
  return out;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string render(const RevenueRecord& r, std::int64_t revision) {
  std::string out = head(r);
  field(out, "revision");
  out += std::to_string(revision);
  out += ',';
  out += tail(r);
  return out;
}

std::string render_content(const RevenueRecord& r) {
  return head(r) + tail(r);
}

}  // namespace revtrace::domain
