#include "stripe_api/client.hpp"

#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <simdjson.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

namespace revtrace::stripe_api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

std::string percent_encode(std::string_view text, bool keep_brackets) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const unsigned char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_brackets && (c == '[' || c == ']'))) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string form_encode(const Form& form) {
  std::string out;
  for (const auto& [k, v] : form) {
    if (!out.empty()) out += '&';
    out += percent_encode(k, true);
    out += '=';
    out += percent_encode(v);
  }
  return out;
}

std::string ApiError::describe() const {
  std::string out;
  switch (kind) {
    case Kind::none:
      return "ok";
    case Kind::transport:
      out = "Stripe API unreachable: ";
      break;
    case Kind::invalid_response:
      out = "Stripe API answered " + std::to_string(http_status) + " with an unexpected body: ";
      break;
    case Kind::usage:
      out = "Stripe API request not sent: ";
      break;
    case Kind::stripe: {
      out = "Stripe API " + std::to_string(http_status);
      if (!type.empty()) out += " " + type;
      std::string detail = code;
      if (!param.empty()) detail += (detail.empty() ? "param " : ", param ") + param;
      if (!detail.empty()) out += " (" + detail + ")";
      out += ": ";
      break;
    }
  }
  out += message.empty() ? "(no message)" : message;
  if (!request_id.empty()) out += " [request " + request_id + "]";
  return out;
}

bool is_retriable_status(int status, std::string_view should_retry) noexcept {
  if (should_retry == "true") return true;
  if (should_retry == "false") return false;
  return status == 409 || status == 429 || status >= 500;
}

std::chrono::milliseconds retry_delay(const ClientOptions& o, int retry,
                                      std::string_view retry_after, double jitter) noexcept {
  if (!retry_after.empty()) {
    std::int64_t seconds = 0;
    bool digits = true;
    for (const char c : retry_after) {
      if (c < '0' || c > '9') {
        digits = false;
        break;
      }
      seconds = std::min<std::int64_t>(seconds * 10 + (c - '0'), 1'000'000);
    }
    if (digits) return std::min(std::chrono::milliseconds(seconds * 1000), o.max_retry_after);
  }
  auto wait = o.initial_backoff;
  for (int i = 0; i < retry && wait < o.max_backoff; ++i) wait *= 2;
  wait = std::min(wait, o.max_backoff);
  jitter = std::clamp(jitter, 0.0, 1.0);
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(wait.count()) * (0.5 + 0.5 * jitter)));
}

namespace {
std::optional<std::chrono::milliseconds> env_milliseconds(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  std::int64_t n = 0;
  const std::string_view v(text);
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || ptr != v.data() + v.size() || n < 0) return std::nullopt;
  return std::chrono::milliseconds(n);
}
}  // namespace

ClientOptions client_options(std::string base_url, std::string api_key) {
  ClientOptions o;
  o.base_url = std::move(base_url);
  o.api_key = std::move(api_key);
  if (auto t = env_milliseconds("REVTRACE_STRIPE_TIMEOUT_MS")) o.timeout = *t;
  if (auto b = env_milliseconds("REVTRACE_STRIPE_BACKOFF_MS")) {
    o.initial_backoff = *b;
    o.max_backoff = *b * 16;
  }
  return o;
}

std::string random_idempotency_key() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    std::random_device rd;
    for (auto& b : bytes) b = static_cast<unsigned char>(rd());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "rt-";
  for (const auto b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

StripeClient::StripeClient(ClientOptions options) : options_(std::move(options)) {
  std::string_view base = options_.base_url;
  while (base.ends_with('/')) base.remove_suffix(1);
  if (base.starts_with("https://")) {
    tls_ = true;
    base.remove_prefix(8);
  } else if (base.starts_with("http://")) {
    tls_ = false;
    base.remove_prefix(7);
  } else {
    throw std::invalid_argument("stripe_api: base URL '" + options_.base_url +
                                "' must start with https:// or http://");
  }
  if (base.empty() || base.find('/') != std::string_view::npos) {
    throw std::invalid_argument("stripe_api: base URL '" + options_.base_url +
                                "' must be scheme://host[:port] without a path");
  }
  const auto colon = base.rfind(':');
  if (colon != std::string_view::npos && base.find(']') == std::string_view::npos) {
    host_ = std::string(base.substr(0, colon));
    port_ = std::string(base.substr(colon + 1));
  } else {
    host_ = std::string(base);
    port_ = tls_ ? "443" : "80";
  }
  if (host_.empty() || port_.empty() ||
      !std::all_of(port_.begin(), port_.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw std::invalid_argument("stripe_api: base URL '" + options_.base_url + "' has a bad port");
  }
  sleeper_ = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

namespace {

struct Attempt {
  bool answered = false;
  std::string failure;  // transport failure text when !answered
  bhttp::response<bhttp::string_body> response;
};

template <class Stream>
asio::awaitable<void> exchange(Stream& stream, beast::tcp_stream& lowest,
                               bhttp::request<bhttp::string_body>& req, Attempt& out,
                               std::chrono::milliseconds timeout) {
  lowest.expires_after(timeout);
  co_await bhttp::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  lowest.expires_after(timeout);
  co_await bhttp::async_read(stream, buffer, parser, asio::use_awaitable);
  out.response = parser.release();
  out.answered = true;
}

asio::awaitable<void> run_attempt(bool tls, const std::string& host, const std::string& port,
                                  bhttp::request<bhttp::string_body>& req, Attempt& out,
                                  std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  try {
    asio::ip::tcp::resolver resolver(executor);
    const auto endpoints = co_await resolver.async_resolve(host, port, asio::use_awaitable);
    if (!tls) {
      beast::tcp_stream stream(executor);
      stream.expires_after(timeout);
      co_await stream.async_connect(endpoints, asio::use_awaitable);
      co_await exchange(stream, stream, req, out, timeout);
      beast::error_code ignored;
      stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      co_return;
    }
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_default_verify_paths();
    ctx.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(executor, ctx);
    if (!SSL_set_tlsext_host_name(stream.native_handle(), host.c_str())) {
      out.failure = "TLS: cannot set the server name";
      co_return;
    }
    stream.set_verify_callback(asio::ssl::host_name_verification(host));
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_after(timeout);
    co_await lowest.async_connect(endpoints, asio::use_awaitable);
    lowest.expires_after(timeout);
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    co_await exchange(stream, lowest, req, out, timeout);
    // No TLS close_notify wait: the answer is complete, and servers often just drop the socket.
  } catch (const boost::system::system_error& e) {
    out.failure = e.code() == beast::error::timeout
                      ? "timed out after " + std::to_string(timeout.count()) + " ms"
                      : e.code().message();
  }
}

Attempt attempt_once(bool tls, const std::string& host, const std::string& port,
                     bhttp::request<bhttp::string_body>& req, std::chrono::milliseconds timeout) {
  Attempt out;
  asio::io_context ioc;
  asio::co_spawn(ioc, run_attempt(tls, host, port, req, out, timeout), asio::detached);
  // The stream deadlines bound every step but name resolution; this bounds everything.
  ioc.run_for(timeout * 3 + std::chrono::seconds(1));
  if (!out.answered && out.failure.empty()) {
    out.failure = "timed out after " + std::to_string(timeout.count()) + " ms";
  }
  return out;
}

// Stripe's error JSON → ApiError fields; a body that is not one keeps its first bytes.
void read_error(const std::string& body, ApiError& e) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::object err;
  if (!parser.parse(body).get(root) && !root["error"].get_object().get(err)) {
    std::string_view s;
    if (!err["type"].get_string().get(s)) e.type = std::string(s);
    if (!err["code"].get_string().get(s)) e.code = std::string(s);
    if (!err["param"].get_string().get(s)) e.param = std::string(s);
    if (!err["message"].get_string().get(s)) e.message = std::string(s);
    return;
  }
  e.message = "non-JSON error body: " + body.substr(0, 200);
}

}  // namespace

ApiResult StripeClient::send(const char* method, std::string_view path, const std::string& body,
                             const std::string& idempotency_key) const {
  ApiResult result;
  if (options_.api_key.empty()) {
    result.error.kind = ApiError::Kind::usage;
    result.error.message = "no Stripe API key configured";
    return result;
  }
  const bool is_post = std::string_view(method) == "POST";
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  for (int attempt = 0;; ++attempt) {
    bhttp::request<bhttp::string_body> req;
    req.method(is_post ? bhttp::verb::post : bhttp::verb::get);
    req.target(std::string(path));
    req.version(11);
    req.set(bhttp::field::host, host_);
    req.set(bhttp::field::user_agent, options_.user_agent);
    req.set(bhttp::field::authorization, "Bearer " + options_.api_key);
    req.set(bhttp::field::accept, "application/json");
    req.set(bhttp::field::connection, "close");
    if (!options_.stripe_version.empty()) req.set("Stripe-Version", options_.stripe_version);
    if (is_post) {
      req.set(bhttp::field::content_type, "application/x-www-form-urlencoded");
      req.set("Idempotency-Key", idempotency_key);
      req.body() = body;
    }
    req.prepare_payload();
    auto a = attempt_once(tls_, host_, port_, req, options_.timeout);
    result.attempts = attempt + 1;
    std::string retry_after;
    bool retriable = false;
    if (!a.answered) {
      result.status = 0;
      result.body.clear();
      result.request_id.clear();
      result.error = ApiError{};
      result.error.kind = ApiError::Kind::transport;
      result.error.message = std::string(method) + " " + std::string(path) + " to " + host_ + ":" +
                             port_ + ": " + a.failure;
      retriable = true;  // a POST is safe to repeat: same Idempotency-Key
    } else {
      result.status = static_cast<int>(a.response.result_int());
      result.body = std::move(a.response.body());
      result.request_id = std::string(a.response["Request-Id"]);
      result.error = ApiError{};
      if (result.status >= 200 && result.status < 300) return result;
      result.error.kind = ApiError::Kind::stripe;
      result.error.http_status = result.status;
      result.error.request_id = result.request_id;
      read_error(result.body, result.error);
      retriable = is_retriable_status(result.status, a.response["Stripe-Should-Retry"]);
      retry_after = std::string(a.response[bhttp::field::retry_after]);
    }
    if (!retriable || attempt >= options_.max_retries) return result;
    sleeper_(retry_delay(options_, attempt, retry_after, jitter(rng)));
  }
}

ApiResult StripeClient::get(std::string_view path, const Form& query) const {
  std::string target(path);
  if (!query.empty()) target += (target.find('?') == std::string::npos ? "?" : "&") + form_encode(query);
  return send("GET", target, {}, {});
}

ApiResult StripeClient::post(std::string_view path, const Form& form,
                             std::string idempotency_key) const {
  if (idempotency_key.empty()) idempotency_key = random_idempotency_key();
  return send("POST", path, form_encode(form), idempotency_key);
}

StripeClient::ListOutcome StripeClient::list(
    std::string_view path, Form query,
    const std::function<bool(std::string_view, std::string_view)>& each, int page_size,
    std::size_t max_pages) const {
  ListOutcome out;
  query.emplace_back("limit", std::to_string(std::clamp(page_size, 1, 100)));
  std::string after;
  simdjson::dom::parser parser;
  while (out.pages < max_pages) {
    Form page = query;
    if (!after.empty()) page.emplace_back("starting_after", after);
    out.last = get(path, page);
    ++out.pages;
    if (!out.last.ok()) return out;
    auto bad = [&](std::string why) {
      out.last.error.kind = ApiError::Kind::invalid_response;
      out.last.error.http_status = out.last.status;
      out.last.error.request_id = out.last.request_id;
      out.last.error.message = std::string(path) + ": " + std::move(why);
      return out;
    };
    simdjson::dom::element root;
    if (parser.parse(out.last.body).get(root)) return bad("not JSON");
    simdjson::dom::array data;
    bool has_more = false;
    if (root["data"].get_array().get(data)) return bad("no data array (not a list)");
    if (root["has_more"].get_bool().get(has_more)) return bad("no has_more flag");
    std::string last_id;
    for (auto item : data) {
      std::string_view id;
      if (item["id"].get_string().get(id)) return bad("a list entry has no id");
      last_id = std::string(id);
      ++out.objects;
      if (!each(id, simdjson::minify(item))) return out;
    }
    if (!has_more) return out;
    if (last_id.empty() || last_id == after) return bad("has_more with an empty page");
    after = std::move(last_id);
  }
  return out;
}

}  // namespace revtrace::stripe_api
