#include "ingest/gateway.hpp"

#include <openssl/evp.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <boost/url.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/http.hpp"
#include "common/kafka.hpp"
#include "common/topics.hpp"
#include "ingest/country.hpp"
#include "ingest/event_parser.hpp"
#include "ingest/stripe_signature.hpp"
#include "ingest/user_agent.hpp"

namespace revtrace::ingest {

// The tracking pixel, compiled in from ingest/pixel/revtrace.js.
std::string_view pixel_script();

namespace http = common::http;
namespace kafka = common::kafka;
namespace bhttp = boost::beast::http;
using namespace std::chrono_literals;

namespace {

// 1×1 transparent GIF.
constexpr unsigned char kGif[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80,
                                  0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04,
                                  0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01,
                                  0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

enum Route : std::size_t {
  kEvents,
  kEventsGif,
  kWebhook,
  kPixel,
  kHealth,
  kReady,
  kMetrics,
  kOther,
  kRoutes
};
constexpr std::array<std::string_view, kRoutes> kRouteNames{
    "/v1/events", "/v1/events.gif", "/v1/webhooks/stripe", "/revtrace.js",
    "/healthz",   "/readyz",        "/metrics",            "other"};

constexpr std::string_view kWebhookPrefix = "/v1/webhooks/stripe/";
constexpr std::string_view kPixelCacheControl = "public, max-age=3600";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A strong ETag: the first 128 bits of the script's SHA-256, so it changes exactly when the bytes
// do and is the same on every gateway instance (a load balancer may alternate between them).
std::string etag_of(std::string_view body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(body.data(), body.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string tag = "\"";
  for (unsigned i = 0; i < 16 && i < len; ++i) {
    tag += kHex[md[i] >> 4];
    tag += kHex[md[i] & 0xf];
  }
  return tag + "\"";
}

// The pixel's gzip representation, compressed once at start-up: best compression, no file name,
// mtime 0, so that every instance with the same zlib sends the same bytes (and the same ETag).
std::string gzip(std::string_view in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16 /* gzip wrapper */, 9,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("gateway: zlib deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("gateway: zlib could not compress the pixel");
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// A qvalue (RFC 9110 12.4.2: "0", "0.5", "1.000") in thousandths; -1 when malformed.
int parse_qvalue(std::string_view q) {
  if (q.empty() || (q[0] != '0' && q[0] != '1')) return -1;
  int value = (q[0] - '0') * 1000;
  if (q.size() == 1) return value;
  if (q[1] != '.' || q.size() > 5) return -1;
  int scale = 100;
  for (std::size_t i = 2; i < q.size(); ++i, scale /= 10) {
    if (q[i] < '0' || q[i] > '9') return -1;
    value += (q[i] - '0') * scale;
  }
  return value > 1000 ? -1 : value;
}

// Whether to answer with the gzip representation, given the request's Accept-Encoding (every
// field line joined by commas, RFC 9110 12.5.3): gzip (also spelled x-gzip, or covered by "*")
// must be acceptable (q > 0) and weigh at least as much as identity when the client gave identity
// a weight (itself or through "*"). No header: identity.
bool accepts_gzip(std::string_view header) {
  int gzip_q = -1;
  int identity_q = -1;
  int star_q = -1;
  bool any = false;
  while (!header.empty()) {
    const auto comma = header.find(',');
    auto item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    const auto semi = item.find(';');
    const auto coding = trim(item.substr(0, semi));
    if (coding.empty()) continue;
    any = true;
    int q = 1000;
    for (auto params = semi == std::string_view::npos ? std::string_view{} : item.substr(semi + 1);
         !params.empty();) {
      const auto next = params.find(';');
      const auto param = trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        q = parse_qvalue(trim(param.substr(2)));
        if (q < 0) q = 0;  // a weight we cannot read does not make a coding acceptable
      }
    }
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      gzip_q = std::max(gzip_q, q);
    } else if (iequals(coding, "identity")) {
      identity_q = q;
    } else if (coding == "*") {
      star_q = q;
    }
  }
  if (!any) return false;
  if (gzip_q < 0) gzip_q = star_q < 0 ? 0 : star_q;
  if (identity_q < 0) identity_q = star_q;  // still -1 (no weight) when neither is listed
  return gzip_q > 0 && gzip_q >= identity_q;
}

// If-None-Match (RFC 9110 13.1.2): "*" or a list of entity tags, compared weakly.
bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  if (if_none_match.empty()) return false;
  while (!if_none_match.empty()) {
    const auto comma = if_none_match.find(',');
    auto item = if_none_match.substr(0, comma);
    if_none_match = comma == std::string_view::npos ? std::string_view{} : if_none_match.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item == "*") return true;
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == etag) return true;
  }
  return false;
}

std::string_view media_type(std::string_view content_type) {
  auto media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  return media;
}

http::Response method_not_allowed(std::string_view allow) {
  auto res = http::json_error(http::Status::method_not_allowed, "method_not_allowed",
                              "this route accepts " + std::string(allow));
  res.set(bhttp::field::allow, allow);
  return res;
}

http::Response unavailable(std::string_view message) {
  auto res = http::json_error(http::Status::service_unavailable, "unavailable", message);
  res.set(bhttp::field::retry_after, "2");
  return res;
}

// Probes broker reachability in the background, so /readyz answers from memory and never blocks
// an io thread on a metadata request.
class ReadinessProbe {
 public:
  explicit ReadinessProbe(const kafka::Producer& producer)
      : thread_([this, &producer] { run(producer); }) {}
  ~ReadinessProbe() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  ReadinessProbe(const ReadinessProbe&) = delete;
  ReadinessProbe& operator=(const ReadinessProbe&) = delete;
  [[nodiscard]] bool reachable() const noexcept { return reachable_.load(std::memory_order_relaxed); }

 private:
  void run(const kafka::Producer& producer) {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      lock.unlock();
      reachable_.store(producer.broker_reachable(2s), std::memory_order_relaxed);
      lock.lock();
      wake_.wait_for(lock, 1s, [this] { return stop_; });
    }
  }

  std::atomic<bool> reachable_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

struct Gateway::Impl {
  Impl(const common::Config& c, common::metrics::Registry& m)
      : config(c),
        metrics(m),
        verifier(c.gateway.webhook_tolerance_s),
        web_topic(common::topics::name(c.kafka, common::topics::kWebEvents)),
        redirect_topic(common::topics::name(c.kafka, common::topics::kCheckoutRedirects)),
        stripe_topic(common::topics::name(c.kafka, common::topics::kStripeEvents)),
        pixel_etag(etag_of(pixel_script())),
        pixel_gzip(gzip(pixel_script())),
        pixel_gzip_etag(etag_of(pixel_gzip)),
        site_known([this](std::string_view id) { return config.find_site(id) != nullptr; }) {
    for (std::size_t r = 0; r < kRoutes; ++r) {
      latency[r] = &m.histogram("revtrace_gateway_request_duration_seconds",
                                "Request latency from the complete request to the answer.",
                                "route=\"" + std::string(kRouteNames[r]) + "\"");
    }
    queue_full = &m.counter("revtrace_gateway_rejected_total",
                            "Requests refused with 503 because Kafka could not take them.",
                            "reason=\"queue_full\"");
    webhook_timeouts = &m.counter("revtrace_gateway_rejected_total",
                                  "Requests refused with 503 because Kafka could not take them.",
                                  "reason=\"webhook_not_acknowledged\"");
    events_accepted = &m.counter("revtrace_gateway_events_accepted_total",
                                 "Events queued to Kafka (answered 202 or with the GIF).");
    webhooks_acknowledged = &m.counter("revtrace_gateway_webhooks_acknowledged_total",
                                       "Stripe webhooks answered 200 after Kafka's acknowledgement.");
  }

  common::metrics::Counter& requests(Route route, unsigned status) {
    const std::size_t s = std::min<unsigned>(status, 599);
    auto& slot = request_counters[route][s];
    auto* c = slot.load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &metrics.counter("revtrace_gateway_requests_total", "HTTP requests by route and status.",
                           "route=\"" + std::string(kRouteNames[route]) + "\",status=\"" +
                               std::to_string(s) + "\"");
      slot.store(c, std::memory_order_release);
    }
    return *c;
  }

  // Every answer goes through here: counted by route and status, timed, CORS headers when the
  // request's Origin is allowed.
  void send(Route route, std::chrono::steady_clock::time_point start, const http::Responder& respond,
            http::Response&& res, std::string_view cors_origin = {}) {
    if (!cors_origin.empty()) {
      res.set(bhttp::field::access_control_allow_origin, cors_origin);
      res.set(bhttp::field::vary, "Origin");
    }
    requests(route, res.result_int()).inc();
    latency[route]->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    respond(std::move(res));
  }

  // Whether `site` lists `origin` (or "*") in allowed_origins.
  bool origin_allowed(std::string_view origin, const common::SiteConfig& site) const {
    for (const auto& o : site.allowed_origins) {
      if (o == "*" || o == origin) return true;
    }
    return false;
  }

  bool any_site_allows(std::string_view origin) const {
    for (const auto& s : config.sites) {
      if (origin_allowed(origin, s)) return true;
    }
    return false;
  }

  RequestContext context(const http::Request& req, const boost::asio::ip::address& peer) const {
    RequestContext ctx;
    ctx.received_at = now_ms();
    ctx.device = parse_user_agent(req[bhttp::field::user_agent]);
    if (!config.gateway.trusted_country_header.empty()) {
      const auto c = req[config.gateway.trusted_country_header];
      if (c.size() == 2 && std::isalpha(static_cast<unsigned char>(c[0])) &&
          std::isalpha(static_cast<unsigned char>(c[1]))) {
        ctx.country = {static_cast<char>(std::toupper(static_cast<unsigned char>(c[0]))),
                       static_cast<char>(std::toupper(static_cast<unsigned char>(c[1])))};
      }
    }
    // The address is used for this lookup only and never leaves this function.
    if (ctx.country.empty() && countries) {
      const auto& header = config.gateway.client_ip_header;
      if (header.empty()) {
        ctx.country = countries->country_of(peer);
      } else {
        // The last field line: a proxy that adds its own line instead of appending puts it last.
        std::string_view value;
        for (auto [it, end] = req.equal_range(header); it != end; ++it) value = it->value();
        if (const auto client = forwarded_client_address(value)) ctx.country = countries->country_of(*client);
      }
    }
    return ctx;
  }

  // Queues parsed events; the answer (202 or the GIF) only says they are queued: the producer
  // retries until Kafka has them (message.timeout.ms = 0) and shutdown flushes it.
  http::Response append_events(const EventParse& parsed, bool gif) {
    if (parsed.status != 202) {
      return http::json_error(static_cast<http::Status>(parsed.status),
                              parsed.status == 404   ? "unknown_site"
                              : parsed.status == 413 ? "batch_too_large"
                                                     : "invalid_event",
                              parsed.error);
    }
    if (static_cast<std::size_t>(events_producer->queue_length()) + parsed.records.size() >
        config.gateway.producer_queue_max) {
      queue_full->inc();
      return unavailable("the gateway's queue to Kafka is full; retry later");
    }
    std::size_t queued = 0;
    for (const auto& r : parsed.records) {
      auto* topic = r.topic == EventTopic::web_events ? web_handle : redirect_handle;
      if (events_producer->produce(topic, r.site_id, r.value) != RD_KAFKA_RESP_ERR_NO_ERROR) break;
      ++queued;
    }
    events_accepted->inc(queued);
    if (queued < parsed.records.size()) {
      queue_full->inc();
      return unavailable("the gateway's queue to Kafka is full after " + std::to_string(queued) +
                         " of " + std::to_string(parsed.records.size()) +
                         " events; retry the rest later");
    }
    if (gif) {
      http::Response res{http::Status::ok, 11};
      res.set(bhttp::field::content_type, "image/gif");
      res.set(bhttp::field::cache_control, "no-store");
      res.body().assign(reinterpret_cast<const char*>(kGif), sizeof kGif);
      res.prepare_payload();
      return res;
    }
    return http::json_response(http::Status::accepted, "{\"accepted\":" + std::to_string(queued) + "}");
  }

  void events(http::Request& req, const boost::asio::ip::address& peer,
              std::chrono::steady_clock::time_point start, const http::Responder& respond) {
    const std::string_view origin = req[bhttp::field::origin];
    if (req.method() == bhttp::verb::options) {
      // A preflight carries no body, so no site: allowed when some site allows the Origin; the
      // POST itself is then checked against its own site.
      const bool allowed = !origin.empty() && any_site_allows(origin);
      http::Response res{http::Status::no_content, 11};
      if (allowed) {
        res.set(bhttp::field::access_control_allow_methods, "POST, OPTIONS");
        res.set(bhttp::field::access_control_allow_headers, "Content-Type");
        res.set(bhttp::field::access_control_max_age, "86400");
      }
      return send(kEvents, start, respond, std::move(res), allowed ? origin : std::string_view{});
    }
    if (req.method() != bhttp::verb::post) {
      return send(kEvents, start, respond, method_not_allowed("POST, OPTIONS"));
    }
    const auto media = media_type(req[bhttp::field::content_type]);
    if (!iequals(media, "application/json") && !iequals(media, "text/plain")) {
      return send(kEvents, start, respond,
                  http::json_error(http::Status::unsupported_media_type, "unsupported_media_type",
                                   "send application/json or text/plain (navigator.sendBeacon)"));
    }
    const auto parsed = parse_events(req.body(), context(req, peer), config.gateway.max_batch, site_known);
    if (!origin.empty() && parsed.status == 202) {
      for (const auto& r : parsed.records) {
        const auto* site = config.find_site(r.site_id);
        if (site == nullptr || !origin_allowed(origin, *site)) {
          return send(kEvents, start, respond,
                      http::json_error(http::Status::forbidden, "origin_not_allowed",
                                       "the Origin " + std::string(origin) +
                                           " is not in the allowed_origins of site '" + r.site_id + "'"));
        }
      }
    }
    send(kEvents, start, respond, append_events(parsed, false),
         parsed.status == 202 ? origin : std::string_view{});
  }

  void events_gif(const http::Request& req, const boost::asio::ip::address& peer,
                  const boost::urls::url_view& url, std::chrono::steady_clock::time_point start,
                  const http::Responder& respond) {
    if (req.method() != bhttp::verb::get) return send(kEventsGif, start, respond, method_not_allowed("GET"));
    std::vector<std::pair<std::string, std::string>> params;
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;
    for (const auto& p : url.params(opts)) params.emplace_back(p.key, p.value);
    const auto parsed = parse_query_event(params, context(req, peer), site_known);
    send(kEventsGif, start, respond, append_events(parsed, true));
  }

  void webhook(http::Request& req, std::string_view site_id, std::chrono::steady_clock::time_point start,
               const http::Responder& respond) {
    if (req.method() != bhttp::verb::post) return send(kWebhook, start, respond, method_not_allowed("POST"));
    const auto* site = config.find_site(site_id);
    if (site == nullptr) {
      return send(kWebhook, start, respond,
                  http::json_error(http::Status::not_found, "unknown_site",
                                   "no site '" + std::string(site_id) + "' is configured"));
    }
    if (site->webhook_secrets.empty()) {
      return send(kWebhook, start, respond,
                  http::json_error(http::Status::not_found, "no_webhook_secret",
                                   "site '" + site->id + "' has no webhook_secrets configured"));
    }
    if (!iequals(media_type(req[bhttp::field::content_type]), "application/json")) {
      return send(kWebhook, start, respond,
                  http::json_error(http::Status::unsupported_media_type, "unsupported_media_type",
                                   "Stripe webhooks are application/json"));
    }
    const std::string& body = req.body();
    const auto verdict = verifier.verify(req["Stripe-Signature"], body, site->webhook_secrets, now_ms() / 1000);
    if (verdict != SignatureResult::valid) {
      const auto code = verdict == SignatureResult::stale_timestamp ? "timestamp_outside_tolerance"
                        : verdict == SignatureResult::no_match      ? "signature_mismatch"
                                                                    : "signature_invalid";
      return send(kWebhook, start, respond, http::json_error(http::Status::bad_request, code, describe(verdict)));
    }
    // Only now, after verification, is the body parsed (the record keeps it byte for byte).
    const auto record = stripe_event_record(site->id, body, now_ms());
    if (!record) {
      return send(kWebhook, start, respond,
                  http::json_error(http::Status::bad_request, "not_a_stripe_event", record.error));
    }

    // 200 only once Kafka acknowledged the append (acks=all, idempotent); 503 on failure or when
    // the deadline passes first, so that Stripe retries. Whichever comes first answers. The
    // webhook producer's message.timeout.ms equals the deadline, so a record that was not
    // acknowledged in time is normally failed by librdkafka too (a retry from Stripe may still
    // duplicate it; consumers deduplicate on the Stripe event id).
    auto timer = std::make_shared<boost::asio::steady_timer>(
        server->context(), std::chrono::milliseconds(config.gateway.webhook_ack_timeout_ms));
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto finish = [this, respond, start, timer, answered, event_id = record.event_id](
                      const kafka::Producer::DeliveryReport& report, bool timed_out) {
      const rd_kafka_resp_err_t err = report.err;
      if (answered->exchange(true)) return;
      timer->cancel();
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR && !timed_out) {
        webhooks_acknowledged->inc();
        spdlog::debug("gateway: webhook {} stored at partition {} offset {}", event_id,
                      report.partition, report.offset);
        return send(kWebhook, start, respond, http::json_response(http::Status::ok, "{\"received\":true}"));
      }
      webhook_timeouts->inc();
      spdlog::warn("gateway: webhook {} not acknowledged by Kafka ({}); answering 503", event_id,
                   timed_out ? "deadline passed" : rd_kafka_err2str(err));
      send(kWebhook, start, respond, unavailable("the event could not be stored durably; Stripe will retry"));
    };
    timer->async_wait([finish](const boost::system::error_code& ec) {
      if (!ec) finish({RD_KAFKA_RESP_ERR__TIMED_OUT}, true);
    });
    const auto err = webhook_producer->produce(stripe_handle, site->id, record.value,
                                               [finish](const kafka::Producer::DeliveryReport& r) { finish(r, false); });
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) finish({err}, false);
  }

  void pixel(const http::Request& req, std::chrono::steady_clock::time_point start,
             const http::Responder& respond) {
    if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
      return send(kPixel, start, respond, method_not_allowed("GET, HEAD"));
    }
    std::string accept_encoding;
    for (auto [it, end] = req.equal_range(bhttp::field::accept_encoding); it != end; ++it) {
      if (!accept_encoding.empty()) accept_encoding += ',';
      accept_encoding += it->value();
    }
    const bool gzipped = accepts_gzip(accept_encoding);
    const std::string& etag = gzipped ? pixel_gzip_etag : pixel_etag;
    http::Response res{etag_matches(req[bhttp::field::if_none_match], etag) ? http::Status::not_modified
                                                                            : http::Status::ok,
                       11};
    res.set(bhttp::field::etag, etag);
    res.set(bhttp::field::cache_control, kPixelCacheControl);
    res.set(bhttp::field::vary, "Accept-Encoding");
    res.set(bhttp::field::access_control_allow_origin, "*");
    if (res.result() == http::Status::ok) {
      const std::string_view body = gzipped ? std::string_view(pixel_gzip) : pixel_script();
      res.set(bhttp::field::content_type, "application/javascript; charset=utf-8");
      if (gzipped) res.set(bhttp::field::content_encoding, "gzip");
      if (req.method() == bhttp::verb::get) res.body() = std::string(body);
      res.content_length(body.size());
    }
    send(kPixel, start, respond, std::move(res));
  }

  void handle(http::Request&& req, const boost::asio::ip::address& peer, const http::Responder& respond) {
    const auto start = std::chrono::steady_clock::now();
    const std::string_view target = req.target();
    // The hot route first, without URL parsing: the pixel and servers post to a fixed path.
    if (target == "/v1/events") return events(req, peer, start, respond);
    const auto url = boost::urls::parse_origin_form(target);
    if (!url) {
      return send(kOther, start, respond,
                  http::json_error(http::Status::bad_request, "bad_request", "malformed request target"));
    }
    const std::string path = url->path();
    if (path == "/v1/events") return events(req, peer, start, respond);
    if (path == "/v1/events.gif") return events_gif(req, peer, *url, start, respond);
    if (path.starts_with(kWebhookPrefix) && path.size() > kWebhookPrefix.size()) {
      return webhook(req, std::string_view(path).substr(kWebhookPrefix.size()), start, respond);
    }
    if (path == "/revtrace.js") return pixel(req, start, respond);
    const Route route = path == "/healthz" ? kHealth : path == "/readyz" ? kReady : path == "/metrics" ? kMetrics : kOther;
    if (route == kOther) {
      return send(kOther, start, respond, http::json_error(http::Status::not_found, "not_found", "no such route"));
    }
    if (req.method() != bhttp::verb::get) return send(route, start, respond, method_not_allowed("GET"));
    if (route == kHealth) {
      return send(route, start, respond, http::json_response(http::Status::ok, R"({"status":"ok"})"));
    }
    if (route == kReady) {
      if (draining.load()) return send(route, start, respond, unavailable("the gateway is shutting down"));
      return send(route, start, respond,
                  readiness->reachable() ? http::json_response(http::Status::ok, R"({"status":"ready"})")
                                         : unavailable("no Kafka broker is reachable"));
    }
    http::Response res{http::Status::ok, 11};
    res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
    res.set(bhttp::field::cache_control, "no-store");
    res.body() = metrics.render();
    res.prepare_payload();
    send(route, start, respond, std::move(res));
  }

  const common::Config& config;
  common::metrics::Registry& metrics;
  StripeSignatureVerifier verifier;
  std::string web_topic;
  std::string redirect_topic;
  std::string stripe_topic;
  // Handles of the three topics, owned by their producers (set in start()).
  rd_kafka_topic_t* web_handle = nullptr;
  rd_kafka_topic_t* redirect_handle = nullptr;
  rd_kafka_topic_t* stripe_handle = nullptr;
  // The pixel's two representations; each ETag is the SHA-256 of its own bytes, so they differ
  // (RFC 9110 8.8.3: a strong validator names exactly one representation).
  std::string pixel_etag;
  std::string pixel_gzip;
  std::string pixel_gzip_etag;
  std::function<bool(std::string_view)> site_known;
  std::array<std::array<std::atomic<common::metrics::Counter*>, 600>, kRoutes> request_counters{};
  std::array<common::metrics::Histogram*, kRoutes> latency{};
  common::metrics::Counter* queue_full = nullptr;
  common::metrics::Counter* webhook_timeouts = nullptr;
  common::metrics::Counter* events_accepted = nullptr;
  common::metrics::Counter* webhooks_acknowledged = nullptr;
  std::atomic<bool> draining{false};
  std::uint64_t undelivered = 0;  // records stop() could not deliver
  std::unique_ptr<CountryDatabase> countries;
  std::unique_ptr<kafka::Producer> events_producer;
  std::unique_ptr<kafka::Producer> webhook_producer;
  std::unique_ptr<ReadinessProbe> readiness;
  std::unique_ptr<http::Server> server;
};

Gateway::Gateway(const common::Config& config, common::metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(config, metrics)) {}

Gateway::~Gateway() { stop(); }

void Gateway::start() {
  auto& impl = *impl_;
  const auto& g = impl.config.gateway;
  if (!g.maxmind_db.empty()) impl.countries = std::make_unique<CountryDatabase>(g.maxmind_db);
  const auto queue_limit = std::to_string(std::max<std::size_t>(g.producer_queue_max, 1000) * 2);
  // Pixel events: answered 202 once queued, so the producer never gives a record up
  // (message.timeout.ms = 0); the bounded queue turns a long broker outage into 503s instead.
  impl.events_producer = std::make_unique<kafka::Producer>(
      impl.config.kafka, std::map<std::string, std::string>{{"queue.buffering.max.messages", queue_limit},
                                                            {"message.timeout.ms", "0"},
                                                            {"linger.ms", "20"}});
  // Webhooks: answered only after the broker's acknowledgement, so a record gives up at the
  // deadline and Stripe retries.
  impl.webhook_producer = std::make_unique<kafka::Producer>(
      impl.config.kafka,
      std::map<std::string, std::string>{{"message.timeout.ms", std::to_string(std::max<std::int64_t>(g.webhook_ack_timeout_ms, 1))},
                                         {"linger.ms", "0"}});
  impl.web_handle = impl.events_producer->topic(impl.web_topic);
  impl.redirect_handle = impl.events_producer->topic(impl.redirect_topic);
  impl.stripe_handle = impl.webhook_producer->topic(impl.stripe_topic);
  impl.readiness = std::make_unique<ReadinessProbe>(*impl.webhook_producer);
  Impl* p = impl_.get();
  impl.metrics.gauge_fn("revtrace_gateway_producer_queue_depth", "Records waiting for Kafka.", "",
                        [p] {
                          return static_cast<double>(p->events_producer->queue_length() +
                                                     p->webhook_producer->queue_length());
                        });
  impl.metrics.gauge_fn("revtrace_gateway_delivery_failures", "Records Kafka definitely did not accept.", "",
                        [p] {
                          return static_cast<double>(p->events_producer->delivery_failures() +
                                                     p->webhook_producer->delivery_failures());
                        });
  impl.metrics.gauge_fn("revtrace_gateway_broker_reachable", "1 when a Kafka broker answered lately.", "",
                        [p] { return p->readiness && p->readiness->reachable() ? 1.0 : 0.0; });
  const auto ep = common::parse_endpoint(g.listen, "gateway.listen");
  http::ServerOptions opts;
  opts.host = ep.host;
  opts.port = ep.port;
  opts.threads = g.threads;
  opts.max_connections = g.max_connections;
  opts.header_timeout = std::chrono::milliseconds(g.header_timeout_ms);
  opts.body_timeout = std::chrono::milliseconds(g.body_timeout_ms);
  const std::size_t events_limit = g.max_body_bytes;
  const std::size_t webhook_limit = g.max_webhook_body_bytes;
  opts.body_limit = [events_limit, webhook_limit](std::string_view target) {
    return target.starts_with(kWebhookPrefix) ? webhook_limit : events_limit;
  };
  impl.server = std::make_unique<http::Server>(
      opts, [p](http::Request&& req, const boost::asio::ip::address& peer, http::Responder respond) {
        p->handle(std::move(req), peer, respond);
      });
  impl.metrics.gauge_fn("revtrace_gateway_connections", "Open client connections.", "",
                        [p] { return p->server ? static_cast<double>(p->server->connections()) : 0.0; });
  impl.server->start();
  spdlog::info("gateway: listening on {}:{}, {} sites", opts.host, impl.server->port(), impl.config.sites.size());
}

std::uint16_t Gateway::port() const noexcept { return impl_->server ? impl_->server->port() : 0; }

void Gateway::stop() {
  if (!impl_ || !impl_->server) return;
  auto& impl = *impl_;
  impl.draining.store(true);
  // Stop accepting and drain: every request already read is answered (webhooks at the latest at
  // their deadline), then the io threads stop. The io_context itself lives on until the producers
  // are flushed, because late delivery reports still touch webhook timers.
  impl.server->stop(std::chrono::milliseconds(impl.config.gateway.webhook_ack_timeout_ms) + 5s);
  // One deadline for both producers. Pixel events never time out on their own
  // (message.timeout.ms = 0), so with Kafka unreachable this is where they are given up.
  constexpr auto kFlushTimeout = 30s;
  const auto deadline = std::chrono::steady_clock::now() + kFlushTimeout;
  struct Outcome {
    const char* what;
    kafka::Producer* producer;
    std::uint64_t failed_before;
    int queued = 0;
    std::uint64_t failed = 0;
  };
  std::array<Outcome, 2> outcomes{{{"pixel events and redirects", impl.events_producer.get(),
                                    impl.events_producer->delivery_failures()},
                                   {"webhooks", impl.webhook_producer.get(),
                                    impl.webhook_producer->delivery_failures()}}};
  for (auto& o : outcomes) {
    const auto left = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   deadline - std::chrono::steady_clock::now()),
                               0ms);
    (void)o.producer->flush(left);
    o.queued = o.producer->queue_length();
    o.failed = o.producer->delivery_failures() - o.failed_before;
  }
  impl.undelivered = 0;
  for (const auto& o : outcomes) {
    impl.undelivered += static_cast<std::uint64_t>(o.queued) + o.failed;
    if (o.queued > 0 || o.failed > 0) {
      spdlog::error("gateway: {} {} NOT delivered to Kafka at shutdown: {} still queued after the "
                    "{} s flush, {} failed",
                    o.queued + static_cast<std::int64_t>(o.failed), o.what, o.queued,
                    std::chrono::duration_cast<std::chrono::seconds>(kFlushTimeout).count(), o.failed);
    }
  }
  impl.readiness.reset();
  impl.server.reset();
  if (impl.undelivered == 0) {
    spdlog::info("gateway: drained and flushed: every accepted record is in Kafka");
  } else {
    spdlog::critical("gateway: shutdown incomplete: {} records NOT delivered to Kafka (accepted "
                     "pixel events among them are lost; unacknowledged webhooks are retried by "
                     "Stripe)",
                     impl.undelivered);
  }
}

bool Gateway::delivered_everything() const noexcept { return impl_->undelivered == 0; }

}  // namespace revtrace::ingest
