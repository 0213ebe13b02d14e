#pragma once
// revtrace::stripe_api — a small client of the Stripe REST API (https://api.stripe.com, or
// stripe-mock on loopback in tests): HTTP/1.1 over Boost.Beast, TLS through OpenSSL for https
// bases (peer and host name verified against the system trust store), plain HTTP for http bases.
//
// Contract:
// - Requests are form-encoded (application/x-www-form-urlencoded, `a[b][c]=v` for nested
//   parameters, as Stripe's own libraries send them) and authenticated with
//   `Authorization: Bearer <key>`.
// - Every POST carries an Idempotency-Key (the caller's, or a random one): the same key is sent
//   on every retry, so a create that reached Stripe but whose answer was lost is not repeated.
// - Each attempt has a deadline (`timeout`, covering connect, TLS, write and read). Retries with
//   exponential back-off and jitter happen on transport failures, 409 (lock timeout), 429 (rate
//   limit) and 5xx, up to `max_retries` times; Stripe's `Stripe-Should-Retry` header overrides the
//   status rule either way, and `Retry-After` (seconds) sets the wait when given (capped).
// - Errors are values (ApiResult::error), never exceptions: Stripe's error JSON
//   (`{"error":{"type","code","param","message"}}`) is surfaced with its request id.
// - Blocking: a call runs on the caller's thread. Not for an io_context thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace revtrace::stripe_api {

// Ordered form parameters: (name, value), names already in Stripe's bracket notation.
using Form = std::vector<std::pair<std::string, std::string>>;

// application/x-www-form-urlencoded, brackets in names kept readable (Stripe accepts both).
[[nodiscard]] std::string form_encode(const Form& form);
// Percent-encodes one component (RFC 3986 unreserved characters kept).
[[nodiscard]] std::string percent_encode(std::string_view text, bool keep_brackets = false);

struct ClientOptions {
  std::string base_url = "https://api.stripe.com";  // scheme://host[:port], no path
  std::string api_key;                              // sk_/rk_ key (Bearer)
  std::string stripe_version;                       // Stripe-Version header; empty = account's
  std::chrono::milliseconds timeout{30000};         // per attempt
  int max_retries = 3;                              // attempts = 1 + max_retries
  std::chrono::milliseconds initial_backoff{500};   // doubles per retry, with 50-100 % jitter
  std::chrono::milliseconds max_backoff{8000};
  std::chrono::milliseconds max_retry_after{60000};  // cap of a server's Retry-After
  std::string user_agent = "revtrace-stripe-api/0.1";
};

struct ApiError {
  enum class Kind : std::uint8_t {
    none,
    transport,         // could not connect, TLS failure, timeout, connection dropped
    stripe,            // Stripe answered with a non-2xx status (details below)
    invalid_response,  // a 2xx body that is not what the endpoint documents
    usage,             // the caller's request is invalid before sending (e.g. no API key)
  };
  Kind kind = Kind::none;
  int http_status = 0;
  std::string type;     // invalid_request_error, card_error, api_error, ...
  std::string code;     // e.g. parameter_missing, resource_missing, rate_limit
  std::string param;    // the offending parameter, when Stripe names one
  std::string message;  // Stripe's message, or what went wrong locally
  std::string request_id;
  // One line naming everything known: "Stripe API 400 invalid_request_error
  // (parameter_unknown, param foo): Received unknown parameter: foo [request req_123]".
  [[nodiscard]] std::string describe() const;
};

struct ApiResult {
  int status = 0;  // HTTP status of the last attempt (0 = no answer)
  std::string body;
  std::string request_id;
  int attempts = 0;
  ApiError error;
  [[nodiscard]] bool ok() const noexcept { return error.kind == ApiError::Kind::none; }
};

// Retry decision for one answer (exposed for tests). `should_retry_header` is the value of
// Stripe-Should-Retry ("" when absent).
[[nodiscard]] bool is_retriable_status(int status, std::string_view should_retry_header) noexcept;
// Wait before retry number `retry` (0-based): Retry-After when given (capped), else exponential.
// `jitter` in [0,1] scales the exponential wait into [50 %, 100 %].
[[nodiscard]] std::chrono::milliseconds retry_delay(const ClientOptions& options, int retry,
                                                    std::string_view retry_after_header,
                                                    double jitter) noexcept;

class StripeClient {
 public:
  // Throws std::invalid_argument when base_url is not http(s)://host[:port] (a start-up error).
  explicit StripeClient(ClientOptions options);

  [[nodiscard]] ApiResult get(std::string_view path, const Form& query = {}) const;
  // An empty `idempotency_key` gets a random one (the same for every retry of this call).
  [[nodiscard]] ApiResult post(std::string_view path, const Form& form,
                               std::string idempotency_key = {}) const;

  // Pages through a list endpoint (`limit`, `starting_after`, `has_more`), calling `each` with
  // every object's id and JSON text in Stripe's order (newest first). Stops early when `each`
  // returns false. `pages` counts the requests made.
  struct ListOutcome {
    ApiResult last;  // the failing request on error, else the last page
    std::size_t objects = 0;
    std::size_t pages = 0;
  };
  [[nodiscard]] ListOutcome list(
      std::string_view path, Form query,
      const std::function<bool(std::string_view id, std::string_view object_json)>& each,
      int page_size = 100, std::size_t max_pages = 100000) const;

  [[nodiscard]] const ClientOptions& options() const noexcept { return options_; }

  // Replaces the wait between retries (tests count and shorten them). Default: sleep_for.
  void set_sleeper(std::function<void(std::chrono::milliseconds)> sleeper) {
    sleeper_ = std::move(sleeper);
  }

 private:
  [[nodiscard]] ApiResult send(const char* method, std::string_view path, const std::string& body,
                               const std::string& idempotency_key) const;

  ClientOptions options_;
  bool tls_ = true;
  std::string host_;
  std::string port_;
  std::function<void(std::chrono::milliseconds)> sleeper_;
};

// Options for `base_url` and `api_key` with the environment's overrides, shared by the commands
// and the query server: REVTRACE_STRIPE_TIMEOUT_MS (per-attempt deadline) and
// REVTRACE_STRIPE_BACKOFF_MS (first back-off; the cap is 16 times it). Unparsable values are
// ignored.
[[nodiscard]] ClientOptions client_options(std::string base_url, std::string api_key);

// A random idempotency key ("rt-" + 32 hex digits).
[[nodiscard]] std::string random_idempotency_key();

}  // namespace revtrace::stripe_api
