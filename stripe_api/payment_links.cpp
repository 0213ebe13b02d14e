#include "stripe_api/payment_links.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <simdjson.h>

#include <algorithm>

#include "common/http.hpp"
#include "stripe_api/currency.hpp"

namespace revtrace::stripe_api {

namespace {

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

std::string normalised_email(std::string_view e) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!e.empty() && space(e.front())) e.remove_prefix(1);
  while (!e.empty() && space(e.back())) e.remove_suffix(1);
  std::string out(e);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool plausible_email(std::string_view e) {
  const auto at = e.find('@');
  return at != std::string_view::npos && at > 0 && at + 1 < e.size() &&
         e.find('@', at + 1) == std::string_view::npos &&
         std::none_of(e.begin(), e.end(), [](char c) { return c == ' ' || c < 0x20; });
}

void json_field(std::string& out, std::string_view name, std::string_view value, bool null_if_empty) {
  out += '"';
  out += name;
  out += "\":";
  if (null_if_empty && value.empty()) {
    out += "null";
    return;
  }
  out += '"';
  common::http::append_json_escaped(out, value);
  out += '"';
}

}  // namespace

std::optional<std::string> with_session_id_placeholder(std::string_view url) {
  const bool https = url.starts_with("https://");
  if (!https && !url.starts_with("http://")) return std::nullopt;
  const auto host_start = https ? 8u : 7u;
  if (url.size() <= host_start || url[host_start] == '/' ||
      std::any_of(url.begin(), url.end(), [](char c) { return c == ' ' || c < 0x20; })) {
    return std::nullopt;
  }
  const auto hash = url.find('#');
  std::string head(url.substr(0, hash));
  const std::string fragment(hash == std::string_view::npos ? "" : url.substr(hash));
  if (head.find('?') == std::string::npos) {
    head += '?';
  } else if (!head.ends_with('?') && !head.ends_with('&')) {
    head += '&';
  }
  head += "session_id={CHECKOUT_SESSION_ID}";
  return head + fragment;
}

PreparedLink prepare_payment_link(const PaymentLinkSpec& spec, std::string_view idempotency_key) {
  PreparedLink p;
  const auto check = check_amount(spec.amount, spec.currency);
  if (!check.ok()) {
    p.error = check.error;
    p.param = is_iso4217(spec.currency) ? "amount" : "currency";
    return p;
  }
  p.currency = check.currency;
  if (spec.site_id.empty()) {
    p.error = "site is required";
    p.param = "site";
    return p;
  }
  if (spec.product.empty() || spec.product.size() > 250) {
    p.error = "product: a name of 1 to 250 characters is required";
    p.param = "product";
    return p;
  }
  if (spec.quantity < 1 || spec.quantity > 999) {
    p.error = "quantity must be in 1..999";
    p.param = "quantity";
    return p;
  }
  if (!spec.interval.empty() && spec.interval != "day" && spec.interval != "week" &&
      spec.interval != "month" && spec.interval != "year") {
    p.error = "interval must be day, week, month or year (or absent for a one-off price)";
    p.param = "interval";
    return p;
  }
  std::string email;
  if (!spec.customer_email.empty()) {
    email = normalised_email(spec.customer_email);
    if (!plausible_email(email)) {
      p.error = "customer email '" + spec.customer_email + "' is not an email address";
      p.param = "customer_email";
      return p;
    }
  }
  for (const auto& [name, v] : {std::pair{"campaign", &spec.campaign},
                                std::pair{"source", &spec.source}, std::pair{"medium", &spec.medium}}) {
    if (v->size() > 500) {
      p.error = "campaign, source and medium are at most 500 characters (Stripe metadata values)";
      p.param = name;
      return p;
    }
  }
  if (!spec.redirect_url.empty()) {
    auto url = with_session_id_placeholder(spec.redirect_url);
    if (!url) {
      p.error = "redirect URL '" + spec.redirect_url + "' is not an absolute http(s) URL";
      p.param = "redirect_url";
      return p;
    }
    p.redirect_url = std::move(*url);
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  const std::string seed = spec.site_id + "\n" + std::string(idempotency_key);
  SHA256(reinterpret_cast<const unsigned char*>(seed.data()), seed.size(), digest);
  p.link_id = "rtl_" + hex(digest, 12);

  Form& f = p.form;
  const std::string item = "line_items[0]";
  f.emplace_back(item + "[price_data][currency]", p.currency);
  f.emplace_back(item + "[price_data][unit_amount]", std::to_string(spec.amount));
  f.emplace_back(item + "[price_data][product_data][name]", spec.product);
  if (!spec.interval.empty()) f.emplace_back(item + "[price_data][recurring][interval]", spec.interval);
  f.emplace_back(item + "[quantity]", std::to_string(spec.quantity));
  std::vector<std::pair<std::string, std::string>> meta{{"revtrace_site", spec.site_id},
                                                        {"revtrace_link", p.link_id}};
  if (!spec.campaign.empty()) meta.emplace_back("revtrace_campaign", spec.campaign);
  if (!spec.source.empty()) meta.emplace_back("revtrace_source", spec.source);
  if (!spec.medium.empty()) meta.emplace_back("revtrace_medium", spec.medium);
  if (!email.empty()) meta.emplace_back("revtrace_customer_email", email);
  // payment_intent_data is for one-off prices, subscription_data for recurring ones; Stripe
  // rejects the other.
  const std::string copy = spec.interval.empty() ? "payment_intent_data" : "subscription_data";
  for (const auto& [k, v] : meta) f.emplace_back("metadata[" + k + "]", v);
  for (const auto& [k, v] : meta) f.emplace_back(copy + "[metadata][" + k + "]", v);
  if (!p.redirect_url.empty()) {
    f.emplace_back("after_completion[type]", "redirect");
    f.emplace_back("after_completion[redirect][url]", p.redirect_url);
  }
  return p;
}

std::optional<CreatedLink> parse_created_link(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(body.data(), body.size()).get(root)) return std::nullopt;
  std::string_view object, id, url;
  if (root["object"].get_string().get(object) || object != "payment_link") return std::nullopt;
  if (root["id"].get_string().get(id) || root["url"].get_string().get(url)) return std::nullopt;
  CreatedLink link;
  link.id = std::string(id);
  link.url = std::string(url);
  bool b = false;
  if (!root["livemode"].get_bool().get(b)) link.livemode = b;
  if (!root["active"].get_bool().get(b)) link.active = b;
  return link;
}

std::string customer_email_hash(std::string_view key, std::string_view site_id,
                                std::string_view email) {
  const std::string k = key.empty() ? "revtrace-email:" + std::string(site_id) : std::string(key);
  const auto e = normalised_email(email);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()),
       reinterpret_cast<const unsigned char*>(e.data()), e.size(), mac, &len);
  return hex(mac, len);
}

std::string payment_link_record(const PaymentLinkSpec& spec, const PreparedLink& prepared,
                                const CreatedLink& created, std::int64_t created_at_ms,
                                std::string_view email_hash_key) {
  std::string out = "{";
  json_field(out, "site_id", spec.site_id, false);
  out += ",\"created_at\":" + std::to_string(created_at_ms) + ",";
  json_field(out, "payment_link_id", created.id, false);
  out += ',';
  json_field(out, "revtrace_link", prepared.link_id, false);
  out += ',';
  json_field(out, "url", created.url, false);
  out += ",\"livemode\":";
  out += created.livemode ? "true" : "false";
  out += ",\"amount\":" + std::to_string(spec.amount) + ",";
  json_field(out, "currency", prepared.currency, false);
  out += ',';
  json_field(out, "product", spec.product, false);
  out += ",\"quantity\":" + std::to_string(spec.quantity) + ",";
  json_field(out, "interval", spec.interval, true);
  out += ',';
  json_field(out, "campaign", spec.campaign, true);
  out += ',';
  json_field(out, "source", spec.source, true);
  out += ',';
  json_field(out, "medium", spec.medium, true);
  out += ',';
  json_field(out, "customer_email_hash",
             spec.customer_email.empty()
                 ? std::string()
                 : customer_email_hash(email_hash_key, spec.site_id, spec.customer_email),
             true);
  out += ',';
  json_field(out, "redirect_url", prepared.redirect_url, true);
  out += '}';
  return out;
}

CreateOutcome create_payment_link(const StripeClient& client, const PaymentLinkSpec& spec,
                                  std::string idempotency_key) {
  CreateOutcome out;
  if (idempotency_key.empty()) idempotency_key = random_idempotency_key();
  out.prepared = prepare_payment_link(spec, idempotency_key);
  if (!out.prepared.ok()) {
    out.error = out.prepared.error;
    return out;
  }
  out.api = client.post("/v1/payment_links", out.prepared.form, idempotency_key);
  if (!out.api.ok()) {
    out.error = out.api.error.describe();
    return out;
  }
  out.link = parse_created_link(out.api.body);
  if (!out.link) {
    out.api.error.kind = ApiError::Kind::invalid_response;
    out.api.error.http_status = out.api.status;
    out.api.error.message = "POST /v1/payment_links: the answer is not a payment_link with id and url";
    out.error = out.api.error.describe();
  }
  return out;
}

}  // namespace revtrace::stripe_api
