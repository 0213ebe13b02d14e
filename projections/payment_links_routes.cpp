#include "projections/payment_links_routes.hpp"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/topic_scan.hpp"
#include "common/topics.hpp"
#include "stripe_api/currency.hpp"
#include "stripe_api/keys.hpp"
#include "stripe_api/payment_links.hpp"

namespace revtrace::projections {

namespace http = common::http;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kWorkers = 2;
constexpr std::size_t kMaxQueued = 64;

http::Response bad_parameter(std::string_view name, std::string_view why) {
  return http::json_error(http::Status::bad_request, "bad_parameter",
                          std::string(name) + ": " + std::string(why));
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The create body read into a spec; the answer naming the bad field otherwise.
struct ParsedBody {
  stripe_api::PaymentLinkSpec spec;
  std::optional<http::Response> error;
};

ParsedBody parse_body(std::string_view body, const std::string& site) {
  ParsedBody out;
  out.spec.site_id = site;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(body.data(), body.size()).get(root)) {
    out.error = http::json_error(http::Status::bad_request, "invalid_json",
                                 "the body must be a JSON object");
    return out;
  }
  simdjson::dom::object fields;
  if (root.get_object().get(fields)) {
    out.error = http::json_error(http::Status::bad_request, "invalid_json",
                                 "the body must be a JSON object");
    return out;
  }
  auto& s = out.spec;
  const std::map<std::string_view, std::string*> strings{
      {"currency", &s.currency},       {"product", &s.product},
      {"campaign", &s.campaign},       {"source", &s.source},
      {"medium", &s.medium},           {"customer_email", &s.customer_email},
      {"redirect_url", &s.redirect_url}, {"interval", &s.interval}};
  bool has_amount = false;
  for (const auto field : fields) {
    const std::string_view key = field.key;
    if (field.value.is_null()) continue;  // null = absent
    if (auto it = strings.find(key); it != strings.end()) {
      std::string_view v;
      if (field.value.get_string().get(v)) {
        out.error = bad_parameter(key, "must be a string");
        return out;
      }
      *it->second = std::string(v);
    } else if (key == "amount" || key == "quantity") {
      std::int64_t n = 0;
      if (field.value.get_int64().get(n)) {
        out.error = bad_parameter(key, key == "amount"
                                           ? "must be an integer in the currency's minor unit "
                                             "(5000 = 50.00 usd)"
                                           : "must be an integer");
        return out;
      }
      (key == "amount" ? s.amount : s.quantity) = n;
      has_amount = has_amount || key == "amount";
    } else {
      out.error = bad_parameter(key, "unknown field");
      return out;
    }
  }
  if (!has_amount) {
    out.error = bad_parameter("amount", "is required (an integer in the currency's minor unit)");
  } else if (s.currency.empty()) {
    out.error = bad_parameter("currency", "is required (an ISO 4217 code such as usd)");
  } else if (s.product.empty()) {
    out.error = bad_parameter("product", "is required (the name shown on the payment page)");
  }
  return out;
}

// Stripe's refusal as the query API's answer: the status says whose problem it is, the body
// carries Stripe's own type, code, parameter, message and request id.
// `,"idempotency_key":"<key>"}` in place of the closing brace of the JSON object `body`.
std::string with_idempotency_key(std::string body, std::string_view key) {
  body.pop_back();
  body += ",\"idempotency_key\":\"";
  http::append_json_escaped(body, key);
  body += "\"}";
  return body;
}

// Every answer of a create names its Idempotency-Key (the client's, or the one generated for it),
// in the body and in the header: repeating the request with it is the only way to retry an
// outcome that is not known (a timeout, a link Kafka did not record) without a second link.
http::Response answer(http::Status status, std::string body, std::string_view idempotency_key) {
  auto res = http::json_response(status, with_idempotency_key(std::move(body), idempotency_key));
  res.set("Idempotency-Key", idempotency_key);
  return res;
}

http::Response stripe_failure(const stripe_api::CreateOutcome& outcome,
                              std::string_view idempotency_key) {
  using Kind = stripe_api::ApiError::Kind;
  const auto& e = outcome.api.error;
  http::Status status = http::Status::bad_gateway;
  std::string code = "stripe_error";
  if (e.kind == Kind::stripe) {
    if (e.http_status == 401 || e.http_status == 403) {
      code = "stripe_authentication";  // the site's configured key: the operator's problem
    } else if (e.http_status == 429) {
      status = http::Status::service_unavailable;
      code = "stripe_rate_limited";
    } else if (e.http_status >= 400 && e.http_status < 500) {
      status = http::Status::unprocessable_entity;  // Stripe refused this link's parameters
      code = "stripe_rejected";
    }
  } else if (e.kind == Kind::transport) {
    code = "stripe_unreachable";
    if (e.message.find("timeout") != std::string::npos ||
        e.message.find("timed out") != std::string::npos) {
      status = http::Status::gateway_timeout;
    }
  } else if (e.kind == Kind::usage) {
    status = http::Status::internal_server_error;
  }
  std::string body = "{\"error\":\"" + code + "\",\"message\":\"";
  http::append_json_escaped(body, outcome.error);
  body += "\",\"stripe\":{\"status\":" + std::to_string(e.http_status) + ",\"type\":\"";
  http::append_json_escaped(body, e.type);
  body += "\",\"code\":\"";
  http::append_json_escaped(body, e.code);
  body += "\",\"param\":\"";
  http::append_json_escaped(body, e.param);
  body += "\",\"request_id\":\"";
  http::append_json_escaped(body, e.request_id);
  body += "\",\"attempts\":" + std::to_string(outcome.api.attempts) + "}}";
  auto res = answer(status, std::move(body), idempotency_key);
  if (status == http::Status::service_unavailable) res.set(boost::beast::http::field::retry_after, "10");
  return res;
}

std::optional<http::Response> no_parameters(const boost::urls::params_view& params) {
  for (const auto& p : params) return bad_parameter(p.key, "unknown parameter");
  return std::nullopt;
}

}  // namespace

struct PaymentLinksRoutes::Impl {
  Impl(const common::Config& c, common::kafka::Producer& p, common::metrics::Registry& m)
      : config(c),
        producer(p),
        created(m.counter("revtrace_query_payment_links_created_total",
                          "Payment Links created at Stripe and recorded through the query API.")),
        stripe_failures(m.counter("revtrace_query_payment_links_stripe_failures_total",
                                  "Payment Link creates that Stripe refused or did not answer.")) {
    for (std::size_t i = 0; i < kWorkers; ++i) workers.emplace_back([this] { work(); });
  }

  // Queues a blocking job; false (and a 503 sent) when the queue is full or stopping.
  bool submit(std::function<void()> job, const http::Responder& respond) {
    {
      std::lock_guard lock(mu);
      if (!stopping && queue.size() < kMaxQueued) {
        queue.emplace_back(std::move(job), respond);
        cv.notify_one();
        return true;
      }
    }
    auto res = http::json_error(http::Status::service_unavailable, "busy",
                                "too many Payment Link requests in progress; retry");
    res.set(boost::beast::http::field::retry_after, "1");
    respond(std::move(res));
    return false;
  }

  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return stopping || !queue.empty(); });
        if (stopping) return;
        job = std::move(queue.front().first);
        queue.pop_front();
      }
      try {
        job();
      } catch (const std::exception& e) {
        spdlog::error("query: payment links job failed: {}", e.what());
      }
    }
  }

  void stop() {
    std::deque<std::pair<std::function<void()>, http::Responder>> left;
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      stopping = true;
      left.swap(queue);
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    for (auto& [job, respond] : left) {
      respond(http::json_error(http::Status::service_unavailable, "unavailable",
                               "the query server is stopping; retry"));
    }
  }

  // Runs on a worker: the Stripe call, then the record, then the answer once Kafka acknowledged.
  void create_link(const common::SiteConfig& site, const std::string& key,
                   stripe_api::PaymentLinkSpec spec, std::string idempotency_key,
                   const http::Responder& respond) {
    const stripe_api::StripeClient client(stripe_api::client_options(site.stripe_api_base, key));
    const auto outcome = stripe_api::create_payment_link(client, spec, idempotency_key);
    if (!outcome.link) {
      stripe_failures.inc();
      spdlog::warn("query: payment link for site {} not created: {}", site.id, outcome.error);
      return respond(stripe_failure(outcome, idempotency_key));
    }
    auto record = std::make_shared<std::string>(stripe_api::payment_link_record(
        spec, outcome.prepared, *outcome.link, now_ms(), site.email_hash_key));
    auto link = std::make_shared<stripe_api::CreatedLink>(*outcome.link);
    auto answered = [this, record, link, respond, idempotency_key](rd_kafka_resp_err_t err) {
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        // The link exists at Stripe: name it, and how to record it without creating another.
        std::string body = "{\"error\":\"not_recorded\",\"message\":\"";
        http::append_json_escaped(
            body, "payment link " + link->id + " (" + link->url +
                      ") was created at Stripe but Kafka did not acknowledge its record (" +
                      rd_kafka_err2str(err) + "); repeat the request with the header " +
                      "Idempotency-Key: " + idempotency_key + " to record it");
        body += "\"}";
        auto res = answer(http::Status::service_unavailable, std::move(body), idempotency_key);
        res.set(boost::beast::http::field::retry_after, "5");
        return respond(std::move(res));
      }
      created.inc();
      respond(answer(http::Status::created, *record, idempotency_key));
    };
    const auto topic = common::topics::name(config.kafka, common::topics::kPaymentLinks);
    if (const auto err = producer.produce(topic, site.id, *record, answered)) answered(err);
  }

  // Runs on a worker: the site's records of the topic, one per Stripe link (a create repeated
  // with the same Idempotency-Key records the same plink_ again; the last record is kept).
  void list_links(const std::string& site, const http::Responder& respond) {
    std::vector<std::string> order;
    std::map<std::string, std::string> by_link;
    simdjson::dom::parser parser;
    const auto error = common::kafka::scan_topic(
        config.kafka, common::topics::name(config.kafka, common::topics::kPaymentLinks), 0, 30s,
        [&](std::string_view key, std::string_view value) {
          if (key != site || value.empty()) return;
          simdjson::dom::element rec;
          std::string_view id;
          if (parser.parse(value.data(), value.size()).get(rec) ||
              rec["payment_link_id"].get_string().get(id)) {
            return;  // not a record of the schema: nothing to list
          }
          const std::string link(id);
          if (!by_link.contains(link)) order.push_back(link);
          by_link[link] = std::string(value);
        });
    if (!error.empty()) {
      auto res = http::json_error(http::Status::service_unavailable, "unavailable",
                                  "could not read the payment links topic: " + error);
      res.set(boost::beast::http::field::retry_after, "5");
      return respond(std::move(res));
    }
    std::string body = "{\"site_id\":\"";
    http::append_json_escaped(body, site);
    body += "\",\"payment_links\":[";
    for (std::size_t i = 0; i < order.size(); ++i) {
      if (i) body += ',';
      body += by_link[order[i]];
    }
    body += "]}";
    respond(http::json_response(http::Status::ok, std::move(body)));
  }

  const common::Config& config;
  common::kafka::Producer& producer;
  common::metrics::Counter& created;
  common::metrics::Counter& stripe_failures;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::deque<std::pair<std::function<void()>, http::Responder>> queue;
  std::vector<std::thread> workers;
};

PaymentLinksRoutes::PaymentLinksRoutes(const common::Config& config,
                                       common::kafka::Producer& producer,
                                       common::metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(config, producer, metrics)) {}

PaymentLinksRoutes::~PaymentLinksRoutes() { stop(); }

void PaymentLinksRoutes::stop() {
  if (impl_) impl_->stop();
}

void PaymentLinksRoutes::create(const http::Request& req, const std::string& site_id,
                                const boost::urls::params_view& params, http::Responder respond) {
  if (auto err = no_parameters(params)) return respond(std::move(*err));
  const auto type = req[boost::beast::http::field::content_type];
  if (!type.empty() && !type.starts_with("application/json")) {
    return respond(http::json_error(http::Status::unsupported_media_type, "unsupported_media_type",
                                    "the body must be application/json"));
  }
  auto parsed = parse_body(req.body(), site_id);
  if (parsed.error) return respond(std::move(*parsed.error));
  std::string idempotency_key(req["Idempotency-Key"]);
  if (idempotency_key.size() > 255 ||
      std::any_of(idempotency_key.begin(), idempotency_key.end(),
                  [](char c) { return c < 0x21 || c > 0x7e; })) {
    return respond(bad_parameter("Idempotency-Key", "at most 255 printable ASCII characters"));
  }
  if (idempotency_key.empty()) idempotency_key = stripe_api::random_idempotency_key();
  // Every rule of stripe_api (currency, amount, product, email, redirect URL ...) before Stripe
  // is called, so a bad parameter is named here rather than by Stripe.
  const auto prepared = stripe_api::prepare_payment_link(parsed.spec, idempotency_key);
  if (!prepared.ok()) return respond(bad_parameter(prepared.param, prepared.error));
  const auto* site = impl_->config.find_site(site_id);
  const auto chosen = site == nullptr ? stripe_api::PaymentLinksKey{}
                                      : stripe_api::payment_links_key(
                                            site->id, site->stripe_links_api_key,
                                            site->stripe_api_key);
  if (chosen.key.empty()) {
    return respond(http::json_error(
        http::Status::service_unavailable, "stripe_not_configured",
        "this site has neither stripe_links_api_key nor stripe_api_key configured"));
  }
  if (!chosen.warning.empty()) spdlog::warn("query: payment links: {}", chosen.warning);
  Impl* impl = impl_.get();
  impl->submit(
      [impl, site, key = chosen.key, spec = std::move(parsed.spec), idempotency_key,
       respond]() mutable {
        impl->create_link(*site, key, std::move(spec), std::move(idempotency_key), respond);
      },
      respond);
}

void PaymentLinksRoutes::list(const std::string& site, const boost::urls::params_view& params,
                              http::Responder respond) {
  if (auto err = no_parameters(params)) return respond(std::move(*err));
  Impl* impl = impl_.get();
  impl->submit([impl, site, respond] { impl->list_links(site, respond); }, respond);
}

}  // namespace revtrace::projections
