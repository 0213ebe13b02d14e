#include "ingest/gateway.hpp"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <boost/url.hpp>
#include <chrono>

#include "common/http.hpp"
#include "common/kafka.hpp"
#include "common/topics.hpp"
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

enum Route : std::size_t { kEvents, kEventsGif, kWebhook, kPixel, kHealth, kReady, kMetrics, kOther, kRoutes };
constexpr std::array<std::string_view, kRoutes> kRouteNames{
    "/v1/events", "/v1/events.gif", "/v1/webhooks/stripe", "/revtrace.js",
    "/healthz",   "/readyz",        "/metrics",            "other"};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string etag_of(std::string_view body) {
  return "\"" + std::to_string(std::hash<std::string_view>{}(body)) + "\"";
}

}  // namespace

struct Gateway::Impl {
  Impl(const common::Config& c, common::metrics::Registry& m)
      : config(c),
        metrics(m),
        verifier(c.gateway.webhook_tolerance_s),
        web_topic(common::topics::name(c.kafka, common::topics::kWebEvents)),
        redirect_topic(common::topics::name(c.kafka, common::topics::kCheckoutRedirects)),
        stripe_topic(common::topics::name(c.kafka, common::topics::kStripeEvents)),
        pixel_etag(etag_of(pixel_script())) {
    for (std::size_t r = 0; r < kRoutes; ++r) {
      latency[r] = &m.histogram("revtrace_gateway_request_duration_seconds",
                                "Request latency until the answer was handed to the socket.",
                                "route=\"" + std::string(kRouteNames[r]) + "\"");
    }
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

  // Wraps a responder: counts and times the answer, adds CORS headers when allowed.
  http::Responder observed(Route route, http::Responder respond, std::string cors_origin) {
    const auto start = std::chrono::steady_clock::now();
    return http::Responder([this, route, respond, start, origin = std::move(cors_origin)](http::Response&& res) mutable {
      if (!origin.empty()) {
        res.set(bhttp::field::access_control_allow_origin, origin);
        res.set(bhttp::field::vary, "Origin");
      }
      requests(route, res.result_int()).inc();
      latency[route]->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      respond(std::move(res));
    });
  }

  bool site_known(std::string_view id) const { return config.find_site(id) != nullptr; }

  // The Origin to echo in CORS headers when every site of the request allows it.
  bool origin_allowed(std::string_view origin, std::string_view site) const {
    const auto* s = config.find_site(site);
    if (s == nullptr) return false;
    for (const auto& o : s->allowed_origins) {
      if (o == "*" || o == origin) return true;
    }
    return false;
  }

  bool any_site_allows(std::string_view origin) const {
    for (const auto& s : config.sites) {
      if (origin_allowed(origin, s.id)) return true;
    }
    return false;
  }

  RequestContext context(const http::Request& req) const {
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
    return ctx;
  }

  http::Response unavailable(std::string_view message) {
    auto res = http::json_error(http::Status::service_unavailable, "unavailable", message);
    res.set(bhttp::field::retry_after, "2");
    return res;
  }

  // Appends parsed events; 202 once queued (delivery is asynchronous for pixel events).
  void append_events(EventParse& parsed, const http::Responder& respond, bool gif) {
    if (parsed.status != 202) {
      const auto status = static_cast<http::Status>(parsed.status);
      return respond(http::json_error(status, parsed.status == 404 ? "unknown_site" : "invalid_event",
                                      parsed.error));
    }
    if (static_cast<std::size_t>(producer->queue_length()) + parsed.records.size() >
        config.gateway.producer_queue_max) {
      return respond(unavailable("the gateway's queue to Kafka is full; retry later"));
    }
    std::size_t queued = 0;
    for (const auto& r : parsed.records) {
      const auto& topic = r.topic == EventTopic::web_events ? web_topic : redirect_topic;
      if (producer->produce(topic, r.site_id, r.value) != RD_KAFKA_RESP_ERR_NO_ERROR) break;
      ++queued;
    }
    if (queued < parsed.records.size()) {
      return respond(unavailable("the gateway's queue to Kafka is full after " + std::to_string(queued) +
                                 " of " + std::to_string(parsed.records.size()) +
                                 " events; retry the rest later"));
    }
    if (gif) {
      http::Response res{http::Status::ok, 11};
      res.set(bhttp::field::content_type, "image/gif");
      res.set(bhttp::field::cache_control, "no-store");
      res.body().assign(reinterpret_cast<const char*>(kGif), sizeof kGif);
      res.prepare_payload();
      return respond(std::move(res));
    }
    respond(http::json_response(http::Status::accepted,
                                "{\"accepted\":" + std::to_string(queued) + "}"));
  }

  void events(http::Request& req, const http::Responder& raw_respond) {
    const std::string origin(req[bhttp::field::origin]);
    if (req.method() == bhttp::verb::options) {
      auto respond = observed(kEvents, raw_respond, any_site_allows(origin) ? origin : "");
      http::Response res{http::Status::no_content, 11};
      if (any_site_allows(origin)) {
        res.set(bhttp::field::access_control_allow_methods, "POST, OPTIONS");
        res.set(bhttp::field::access_control_allow_headers, "Content-Type");
        res.set(bhttp::field::access_control_max_age, "86400");
      }
      return respond(std::move(res));
    }
    if (req.method() != bhttp::verb::post) {
      auto respond = observed(kEvents, raw_respond, "");
      auto res = http::json_error(http::Status::method_not_allowed, "method_not_allowed",
                                  "POST events here (OPTIONS for CORS preflight)");
      res.set(bhttp::field::allow, "POST, OPTIONS");
      return respond(std::move(res));
    }
    const std::string_view type = req[bhttp::field::content_type];
    const auto media = type.substr(0, type.find(';'));
    if (media != "application/json" && media != "text/plain") {
      return observed(kEvents, raw_respond, "")(http::json_error(
          http::Status::unsupported_media_type, "unsupported_media_type",
          "send application/json or text/plain (navigator.sendBeacon)"));
    }
    if (req.body().size() > config.gateway.max_body_bytes) {
      return observed(kEvents, raw_respond, "")(http::json_error(
          http::Status::payload_too_large, "body_too_large",
          "event bodies are limited to " + std::to_string(config.gateway.max_body_bytes) + " bytes"));
    }
    auto parsed = parse_events(req.body(), context(req), config.gateway.max_batch,
                               [this](std::string_view s) { return site_known(s); });
    std::string cors;
    if (!origin.empty() && parsed.status == 202) {
      bool allowed = true;
      for (const auto& r : parsed.records) allowed = allowed && origin_allowed(origin, r.site_id);
      if (!allowed) {
        return observed(kEvents, raw_respond, "")(http::json_error(
            http::Status::forbidden, "origin_not_allowed",
            "the Origin " + origin + " is not in the site's allowed_origins"));
      }
      cors = origin;
    }
    append_events(parsed, observed(kEvents, raw_respond, cors), false);
  }

  void events_gif(const http::Request& req, const boost::urls::url_view& url,
                  const http::Responder& raw_respond) {
    auto respond = observed(kEventsGif, raw_respond, "");
    if (req.method() != bhttp::verb::get) {
      auto res = http::json_error(http::Status::method_not_allowed, "method_not_allowed", "GET only");
      res.set(bhttp::field::allow, "GET");
      return respond(std::move(res));
    }
    std::vector<std::pair<std::string, std::string>> params;
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;
    for (const auto& p : url.params(opts)) params.emplace_back(p.key, p.value);
    auto parsed = parse_query_event(params, context(req),
                                    [this](std::string_view s) { return site_known(s); });
    append_events(parsed, respond, true);
  }

  void webhook(http::Request& req, std::string_view site_id, const http::Responder& raw_respond) {
    auto respond = observed(kWebhook, raw_respond, "");
    if (req.method() != bhttp::verb::post) {
      auto res = http::json_error(http::Status::method_not_allowed, "method_not_allowed", "POST only");
      res.set(bhttp::field::allow, "POST");
      return respond(std::move(res));
    }
    const auto* site = config.find_site(site_id);
    if (site == nullptr) {
      return respond(http::json_error(http::Status::not_found, "unknown_site",
                                      "no site '" + std::string(site_id) + "' is configured"));
    }
    if (site->webhook_secrets.empty()) {
      return respond(http::json_error(http::Status::not_found, "no_webhook_secret",
                                      "site '" + site->id + "' has no webhook_secrets configured"));
    }
    const std::string& body = req.body();
    const auto verdict = verifier.verify(req["Stripe-Signature"], body, site->webhook_secrets,
                                         now_ms() / 1000);
    if (verdict != SignatureResult::valid) {
      const auto code = verdict == SignatureResult::stale_timestamp ? "timestamp_outside_tolerance"
                        : verdict == SignatureResult::no_match      ? "signature_mismatch"
                                                                    : "signature_invalid";
      return respond(http::json_error(http::Status::bad_request, code, describe(verdict)));
    }
    // Only now, after verification, is the body parsed (the record keeps it byte for byte).
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string_view id, type;
    std::int64_t created = 0;
    bool livemode = false;
    if (parser.parse(body).get(doc) || !doc.is_object() || doc["id"].get(id) ||
        !id.starts_with("evt_") || doc["type"].get(type) || doc["created"].get(created) ||
        doc["livemode"].get(livemode) || !doc["data"]["object"].is_object()) {
      return respond(http::json_error(http::Status::bad_request, "not_a_stripe_event",
                                      "the body is not a Stripe event (id evt_..., type, created, "
                                      "livemode, data.object)"));
    }
    std::string_view api_version;
    const bool has_version = !doc["api_version"].get(api_version);
    std::string record = "{\"site_id\":\"";
    http::append_json_escaped(record, site->id);
    record += "\",\"source\":\"webhook\",\"received_at\":" + std::to_string(now_ms()) +
              ",\"event_id\":\"";
    http::append_json_escaped(record, id);
    record += "\",\"event_type\":\"";
    http::append_json_escaped(record, type);
    record += "\",\"livemode\":";
    record += livemode ? "true" : "false";
    record += ",\"api_version\":";
    if (has_version) {
      record += "\"";
      http::append_json_escaped(record, api_version);
      record += "\"";
    } else {
      record += "null";
    }
    record += ",\"created\":" + std::to_string(created) + ",\"payload\":\"";
    http::append_json_escaped(record, body);
    record += "\"}";

    // 200 only once Kafka acknowledged the append (acks=all, idempotent); 503 on failure or when
    // the deadline passes first, so that Stripe retries. Whichever comes first answers.
    auto timer = std::make_shared<boost::asio::steady_timer>(
        server->context(), std::chrono::milliseconds(config.gateway.webhook_ack_timeout_ms));
    const std::string event_id(id);
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto finish = [this, respond, timer, answered, event_id](rd_kafka_resp_err_t err, bool timed_out) {
      if (answered->exchange(true)) return;
      timer->cancel();
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR && !timed_out) {
        respond(http::json_response(http::Status::ok, "{\"received\":true}"));
        return;
      }
      spdlog::warn("gateway: webhook {} not acknowledged by Kafka ({}); answering 503", event_id,
                   timed_out ? "deadline passed" : rd_kafka_err2str(err));
      respond(unavailable("the event could not be stored durably; Stripe will retry"));
    };
    timer->async_wait([finish](const boost::system::error_code& ec) {
      if (!ec) finish(RD_KAFKA_RESP_ERR__TIMED_OUT, true);
    });
    const auto err = producer->produce(stripe_topic, site->id, record,
                                       [finish](rd_kafka_resp_err_t e) { finish(e, false); });
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) finish(err, false);
  }

  void pixel(const http::Request& req, const http::Responder& raw_respond) {
    auto respond = observed(kPixel, raw_respond, "");
    if (req[bhttp::field::if_none_match] == pixel_etag) {
      http::Response res{http::Status::not_modified, 11};
      res.set(bhttp::field::etag, pixel_etag);
      res.set(bhttp::field::cache_control, "public, max-age=3600");
      return respond(std::move(res));
    }
    http::Response res{http::Status::ok, 11};
    res.set(bhttp::field::content_type, "application/javascript; charset=utf-8");
    res.set(bhttp::field::cache_control, "public, max-age=3600");
    res.set(bhttp::field::etag, pixel_etag);
    res.set(bhttp::field::access_control_allow_origin, "*");
    res.body() = std::string(pixel_script());
    res.prepare_payload();
    respond(std::move(res));
  }

  void handle(http::Request&& req, http::Responder respond) {
    const auto url = boost::urls::parse_origin_form(req.target());
    if (!url) {
      return observed(kOther, respond, "")(
          http::json_error(http::Status::bad_request, "bad_request", "malformed request target"));
    }
    const std::string path = url->path();
    if (path == "/v1/events") return events(req, respond);
    if (path == "/v1/events.gif") return events_gif(req, *url, respond);
    constexpr std::string_view hook = "/v1/webhooks/stripe/";
    if (path.starts_with(hook) && path.size() > hook.size()) {
      return webhook(req, std::string_view(path).substr(hook.size()), respond);
    }
    if (path == "/revtrace.js") return pixel(req, respond);
    if (path == "/healthz") {
      return observed(kHealth, respond, "")(http::json_response(http::Status::ok, R"({"status":"ok"})"));
    }
    if (path == "/readyz") {
      const bool ok = producer->broker_reachable(1s);
      return observed(kReady, respond, "")(
          ok ? http::json_response(http::Status::ok, R"({"status":"ready"})")
             : unavailable("no Kafka broker is reachable"));
    }
    if (path == "/metrics") {
      http::Response res{http::Status::ok, 11};
      res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
      res.body() = metrics.render();
      res.prepare_payload();
      return observed(kMetrics, respond, "")(std::move(res));
    }
    observed(kOther, respond, "")(http::json_error(http::Status::not_found, "not_found", "no such route"));
  }

  const common::Config& config;
  common::metrics::Registry& metrics;
  StripeSignatureVerifier verifier;
  std::string web_topic;
  std::string redirect_topic;
  std::string stripe_topic;
  std::string pixel_etag;
  std::array<std::array<std::atomic<common::metrics::Counter*>, 600>, kRoutes> request_counters{};
  std::array<common::metrics::Histogram*, kRoutes> latency{};
  std::unique_ptr<kafka::Producer> producer;
  std::unique_ptr<http::Server> server;
};

Gateway::Gateway(const common::Config& config, common::metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(config, metrics)) {}

Gateway::~Gateway() { stop(); }

void Gateway::start() {
  auto& impl = *impl_;
  const auto& g = impl.config.gateway;
  impl.producer = std::make_unique<kafka::Producer>(
      impl.config.kafka,
      std::map<std::string, std::string>{
          {"queue.buffering.max.messages", std::to_string(std::max<std::size_t>(g.producer_queue_max, 1000) * 2)},
          {"message.timeout.ms", std::to_string(std::max<std::int64_t>(g.webhook_ack_timeout_ms, 30000))}});
  impl.metrics.gauge_fn("revtrace_gateway_producer_queue_depth", "Records waiting for Kafka.", "",
                        [p = impl.producer.get()] { return static_cast<double>(p->queue_length()); });
  impl.metrics.gauge_fn("revtrace_gateway_delivery_failures_total",
                        "Records Kafka definitely did not accept.", "",
                        [p = impl.producer.get()] { return static_cast<double>(p->delivery_failures()); });
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
    return target.starts_with("/v1/webhooks/") ? webhook_limit : events_limit;
  };
  Impl* p = impl_.get();
  impl.server = std::make_unique<http::Server>(
      opts, [p](http::Request&& req, http::Responder respond) { p->handle(std::move(req), respond); });
  impl.server->start();
  spdlog::info("gateway: listening on {}:{}, {} sites", opts.host, impl.server->port(),
               impl.config.sites.size());
}

std::uint16_t Gateway::port() const noexcept {
  return impl_->server ? impl_->server->port() : 0;
}

void Gateway::stop() {
  if (!impl_ || !impl_->server) return;
  impl_->server->stop(10s);  // stop accepting, drain in-flight requests
  impl_->server.reset();
  if (impl_->producer) {
    if (!impl_->producer->flush(30s)) {
      spdlog::error("gateway: {} records were not delivered to Kafka before shutdown",
                    impl_->producer->queue_length());
    }
  }
}

}  // namespace revtrace::ingest
