#include "projections/query_service.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cctype>
#include <atomic>
#include <boost/url.hpp>
#include <charconv>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/http.hpp"
#include "common/kafka.hpp"
#include "common/topics.hpp"
#include "projections/ad_spend.hpp"
#include "projections/payment_links_routes.hpp"
#include "projections/read_model.hpp"

namespace revtrace::projections {

namespace http = common::http;
namespace kafka = common::kafka;
using namespace std::chrono_literals;

// The dashboard page, compiled in from projections/dashboard/index.html.
std::string_view dashboard_html();

namespace {

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

// Tokens are compared as SHA-256 digests with CRYPTO_memcmp: the comparison takes the same time
// whatever the token's length or how many leading bytes match.
Digest digest(std::string_view token) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

// The target split into site and the rest, or nullopt when it is not under /v1/sites/{site}/.
struct SitePath {
  std::string site;
  std::string rest;
};
std::optional<SitePath> site_path(std::string_view path) {
  constexpr std::string_view prefix = "/v1/sites/";
  if (!path.starts_with(prefix)) return std::nullopt;
  path.remove_prefix(prefix.size());
  const auto slash = path.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  return SitePath{std::string(path.substr(0, slash)), std::string(path.substr(slash))};
}

// Matches `rest` against a route path; a "{name}" segment takes the (non-empty) rest of the path.
bool match_route(std::string_view pattern, std::string_view rest, std::string& param) {
  const auto brace = pattern.find('{');
  if (brace == std::string_view::npos) return pattern == rest;
  const auto fixed = pattern.substr(0, brace);
  if (!rest.starts_with(fixed) || rest.size() == fixed.size()) return false;
  param = std::string(rest.substr(fixed.size()));
  return true;
}

http::Response bad_parameter(std::string_view name, std::string_view why) {
  return http::json_error(http::Status::bad_request, "bad_parameter",
                          std::string(name) + ": " + std::string(why));
}

// Routes that take no query parameters refuse every one, naming it.
std::optional<http::Response> no_parameters(const boost::urls::params_view& params) {
  for (const auto& p : params) return bad_parameter(p.key, "unknown parameter");
  return std::nullopt;
}

}  // namespace

struct QueryService::Impl {
  Impl(const common::Config& c, common::metrics::Registry& m)
      : config(c),
        metrics(m),
        applied(m.counter("revtrace_query_records_applied_total",
                          "Attributed-revenue records (and tombstones) applied to the read models.")) {}

  // 401 without a valid token, 403 for another site's token; nullopt when allowed. Tokens are
  // never logged or echoed.
  std::optional<http::Response> authorize(const http::Request& req, const std::string& site) const {
    const auto header = req[boost::beast::http::field::authorization];
    constexpr std::string_view bearer = "bearer ";
    const bool has_bearer =
        header.size() > bearer.size() &&
        std::equal(bearer.begin(), bearer.end(), header.begin(),
                   [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
    if (!has_bearer) {
      return http::json_error(http::Status::unauthorized, "unauthorized",
                              "an Authorization: Bearer <token> header is required");
    }
    const Digest presented = digest(header.substr(bearer.size()));
    bool other_site = false;
    bool allowed = false;
    // Every token is compared (no early exit), so timing says nothing about which one matched.
    for (const auto& [site_id, token] : token_digests) {
      if (CRYPTO_memcmp(presented.data(), token.data(), token.size()) == 0) {
        (site_id == site ? allowed : other_site) = true;
      }
    }
    if (allowed) return std::nullopt;
    if (other_site) {
      return http::json_error(http::Status::forbidden, "forbidden",
                              "this token does not grant access to this site");
    }
    return http::json_error(http::Status::unauthorized, "unauthorized", "invalid token");
  }

  // Parses the shared query parameters; returns the 400 answer naming a bad parameter.
  std::optional<http::Response> parse_query(const boost::urls::params_view& params,
                                            const std::string& site, BreakdownQuery& q,
                                            std::map<std::string, std::string>& extra,
                                            std::initializer_list<std::string_view> allowed_extra) {
    q.site = site;
    const auto bad = bad_parameter;
    const auto& dims = group_by_dimensions();
    const auto& models = model_names();
    std::set<std::string> seen;
    for (const auto& p : params) {
      const std::string key = p.key;
      const std::string value = p.value;
      // A repeated parameter is ambiguous (which one counts?): refused rather than last-wins.
      if (!seen.insert(key).second) return bad(key, "given more than once");
      if (key == "model") {
        if (std::find(models.begin(), models.end(), value) == models.end()) {
          return bad("model", "must be one of first_touch, last_touch, last_non_direct, linear, "
                              "position_based, time_decay");
        }
        q.model = value;
      } else if (key == "group_by") {
        if (std::find(dims.begin(), dims.end(), value) == dims.end()) {
          return bad("group_by", "must be one of channel, source, medium, campaign, referrer, "
                                 "landing_path, country, browser, device_class, method, all");
        }
        q.group_by = value;
      } else if (key == "livemode") {
        if (value != "true" && value != "false") return bad("livemode", "must be true or false");
        q.livemode = value == "true";
      } else if (key == "currency") {
        if (value.size() != 3 || !std::all_of(value.begin(), value.end(), [](char c) {
              return c >= 'a' && c <= 'z';
            })) {
          return bad("currency", "must be a lower-case ISO 4217 code such as usd");
        }
        q.currency = value;
      } else if (key == "from" || key == "to") {
        if (!valid_day(value)) return bad(key, "must be a date YYYY-MM-DD");
        (key == "from" ? q.from_day : q.to_day) = value;
      } else if (key.starts_with("filter.")) {
        const std::string dim = key.substr(7);
        if (std::find(dims.begin(), dims.end(), dim) == dims.end() || dim == "all") {
          return bad(key, "is not a dimension that can be filtered");
        }
        q.filters.emplace_back(dim, value);
      } else if (std::find(allowed_extra.begin(), allowed_extra.end(), key) != allowed_extra.end()) {
        extra[key] = value;
      } else {
        return bad(key, "unknown parameter");
      }
    }
    if (!q.from_day.empty() && !q.to_day.empty() && q.from_day > q.to_day) {
      return bad("from", "must not be after to");
    }
    return std::nullopt;
  }

  static void append_rows(std::string& body, const std::vector<BreakdownRow>& rows) {
    body += "\"rows\":[";
    bool first = true;
    for (const auto& row : rows) {
      if (!first) body += ',';
      first = false;
      body += "{\"key\":\"";
      http::append_json_escaped(body, row.key);
      body += "\",\"currency\":\"";
      http::append_json_escaped(body, row.currency);
      body += "\",\"revenue\":" + std::to_string(row.revenue) + ",\"net\":" +
              std::to_string(row.net) + ",\"payments\":" + std::to_string(row.payments) + "}";
    }
    body += "]";
  }

  static std::string csv_field(std::string_view v) {
    if (v.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(v);
    std::string out = "\"";
    for (char c : v) {
      if (c == '"') out += '"';
      out += c;
    }
    return out + "\"";
  }

  static http::Response csv(const std::string& key_name, const std::vector<BreakdownRow>& rows) {
    std::string body = key_name + ",currency,revenue,net,payments\r\n";
    for (const auto& r : rows) {
      body += csv_field(r.key) + "," + r.currency + "," + std::to_string(r.revenue) + "," +
              std::to_string(r.net) + "," + std::to_string(r.payments) + "\r\n";
    }
    http::Response res{http::Status::ok, 11};
    res.set(boost::beast::http::field::content_type, "text/csv; charset=utf-8");
    res.set(boost::beast::http::field::content_disposition, "attachment; filename=\"revtrace.csv\"");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
  }

  std::string header(const BreakdownQuery& q) {
    std::string body = "{\"site_id\":\"";
    http::append_json_escaped(body, q.site);
    body += "\",\"model\":\"" + q.model + "\",\"group_by\":\"" + q.group_by +
            "\",\"livemode\":" + (q.livemode ? "true" : "false") + ",\"from\":" +
            (q.from_day.empty() ? "null" : "\"" + q.from_day + "\"") + ",\"to\":" +
            (q.to_day.empty() ? "null" : "\"" + q.to_day + "\"") + ",";
    return body;
  }

  http::Response revenue(const boost::urls::params_view& params, const std::string& site,
                         bool series) {
    BreakdownQuery q;
    std::map<std::string, std::string> extra;
    if (auto err = parse_query(params, site, q, extra, {"format"})) return std::move(*err);
    const std::string format = extra.count("format") ? extra["format"] : "json";
    if (format != "json" && format != "csv") {
      return http::json_error(http::Status::bad_request, "bad_parameter",
                              "format: must be json or csv");
    }
    const auto rows = series ? models_->timeseries(q) : models_->breakdown(q);
    if (format == "csv") return csv(series ? "day" : q.group_by, rows);
    std::string body = header(q);
    append_rows(body, rows);
    body += "}";
    return http::json_response(http::Status::ok, std::move(body));
  }

  http::Response payments(const boost::urls::params_view& params, const std::string& site) {
    BreakdownQuery q;
    std::map<std::string, std::string> extra;
    if (auto err = parse_query(params, site, q, extra, {"limit", "cursor"})) return std::move(*err);
    std::size_t limit = 50;
    if (extra.count("limit")) {
      const auto& v = extra["limit"];
      std::size_t n = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc{} || ptr != v.data() + v.size() || n < 1 || n > 500) {
        return http::json_error(http::Status::bad_request, "bad_parameter",
                                "limit: must be an integer from 1 to 500");
      }
      limit = n;
    }
    std::string cursor;
    if (extra.count("cursor")) {
      cursor = extra["cursor"];
      if (!cursor.starts_with("t\x1f" + site + "\x1f")) {
        return http::json_error(http::Status::bad_request, "bad_parameter",
                                "cursor: not a cursor returned by this route");
      }
    }
    const auto page = models_->payments(q, limit, cursor);
    std::string body = header(q) + "\"payments\":[";
    for (std::size_t i = 0; i < page.records.size(); ++i) {
      if (i) body += ',';
      body += page.records[i];
    }
    body += "],\"next_cursor\":";
    if (page.next_cursor.empty()) {
      body += "null";
    } else {
      body += "\"";
      http::append_json_escaped(body, boost::urls::encode(page.next_cursor, boost::urls::unreserved_chars));
      body += "\"";
    }
    body += "}";
    return http::json_response(http::Status::ok, std::move(body));
  }

  http::Response roas(const boost::urls::params_view& params, const std::string& site) {
    BreakdownQuery q;
    q.group_by = "campaign";
    std::map<std::string, std::string> extra;
    if (auto err = parse_query(params, site, q, extra, {"format"})) return std::move(*err);
    if (extra.count("format") && extra["format"] != "json" && extra["format"] != "csv") {
      return bad_parameter("format", "must be json or csv");
    }
    if (!is_spend_dimension(q.group_by)) {
      return http::json_error(http::Status::bad_request, "bad_parameter",
                              "group_by: ROAS groups by campaign, channel or source");
    }
    // Spend is recorded per channel, source and campaign only: with a filter on anything else
    // the revenue would be divided by spend that was not spent on it.
    for (const auto& [dim, value] : q.filters) {
      if (!is_spend_dimension(dim)) {
        return bad_parameter("filter." + dim, "ad spend has no " + dim +
                                                  "; ROAS filters by channel, source or campaign");
      }
    }
    const auto rows = models_->roas(q);
    auto ratio = [](std::int64_t num, std::int64_t den) -> std::string {
      if (den == 0) return "null";
      char buf[48];
      std::snprintf(buf, sizeof buf, "%.4f", static_cast<double>(num) / static_cast<double>(den));
      return buf;
    };
    if (extra.count("format") && extra["format"] == "csv") {
      std::string body = q.group_by + ",currency,spend,revenue,net,payments,customers,roas,cost_per_customer\r\n";
      for (const auto& r : rows) {
        body += csv_field(r.key) + "," + r.currency + "," + std::to_string(r.spend) + "," +
                std::to_string(r.revenue) + "," + std::to_string(r.net) + "," +
                std::to_string(r.payments) + "," + std::to_string(r.customers) + "," +
                ratio(r.revenue, r.spend) + "," + ratio(r.spend, r.customers) + "\r\n";
      }
      http::Response res{http::Status::ok, 11};
      res.set(boost::beast::http::field::content_type, "text/csv; charset=utf-8");
      res.body() = std::move(body);
      res.prepare_payload();
      return res;
    }
    std::string body = header(q) + "\"rows\":[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      if (i) body += ',';
      body += "{\"key\":\"";
      http::append_json_escaped(body, r.key);
      body += "\",\"currency\":\"" + r.currency + "\",\"spend\":" + std::to_string(r.spend) +
              ",\"revenue\":" + std::to_string(r.revenue) + ",\"net\":" + std::to_string(r.net) +
              ",\"payments\":" + std::to_string(r.payments) + ",\"customers\":" +
              std::to_string(r.customers) + ",\"roas\":" + ratio(r.revenue, r.spend) +
              ",\"cost_per_customer\":" + ratio(r.spend, r.customers) + "}";
    }
    body += "]}";
    return http::json_response(http::Status::ok, std::move(body));
  }

  // PUT ad-spend: appended to the ad-spend topic; 200 once Kafka acknowledged every entry.
  void put_ad_spend(const http::Request& req, const std::string& site, http::Responder respond) {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    auto parsed = parse_ad_spend_json(req.body(), site, now);
    if (!parsed.error.empty()) {
      return respond(http::json_error(http::Status::bad_request, "invalid_ad_spend", parsed.error));
    }
    if (parsed.entries.empty()) {
      return respond(http::json_error(http::Status::bad_request, "invalid_ad_spend", "no entries"));
    }
    struct Pending {
      std::atomic<std::size_t> left;
      std::atomic<bool> failed{false};
      std::size_t total;
      http::Responder respond;
    };
    auto pending = std::make_shared<Pending>();
    pending->left = parsed.entries.size();
    pending->total = parsed.entries.size();
    pending->respond = respond;
    auto done = [pending](rd_kafka_resp_err_t err) {
      if (err) pending->failed = true;
      if (pending->left.fetch_sub(1) != 1) return;
      if (pending->failed) {
        auto res = http::json_error(http::Status::service_unavailable, "unavailable",
                                    "Kafka did not acknowledge the ad spend; retry");
        res.set(boost::beast::http::field::retry_after, "5");
        pending->respond(std::move(res));
      } else {
        pending->respond(http::json_response(
            http::Status::ok, "{\"accepted\":" + std::to_string(pending->total) + "}"));
      }
    };
    for (const auto& e : parsed.entries) {
      const auto topic = common::topics::name(config.kafka, common::topics::kAdSpend);
      if (producer->produce(topic, e.key(), e.to_json(), done) != 0) {
        done(RD_KAFKA_RESP_ERR__QUEUE_FULL);
      }
    }
  }

  // Routes under /v1/sites/{site}/: the router dispatches from this table only, and
  // QueryService::site_routes() lists it, so the isolation tests cover every route.
  struct RouteContext {
    const http::Request& req;
    const std::string& site;
    const std::string& param;  // value of the route's {name} segment, if any
    const boost::urls::params_view& params;
  };
  using RouteHandler = void (*)(Impl&, const RouteContext&, http::Responder);
  struct SiteRoute {
    boost::beast::http::verb method;
    std::string_view path;
    RouteHandler handler;
  };
  static const std::vector<SiteRoute>& routes() {
    using boost::beast::http::verb;
    // A new route is one entry here (route files of other features add theirs the same way).
    static const std::vector<SiteRoute> table{
        {verb::get, "/revenue",
         [](Impl& s, const RouteContext& c, http::Responder r) { r(s.revenue(c.params, c.site, false)); }},
        {verb::get, "/timeseries",
         [](Impl& s, const RouteContext& c, http::Responder r) { r(s.revenue(c.params, c.site, true)); }},
        {verb::get, "/roas",
         [](Impl& s, const RouteContext& c, http::Responder r) { r(s.roas(c.params, c.site)); }},
        {verb::get, "/payments",
         [](Impl& s, const RouteContext& c, http::Responder r) { r(s.payments(c.params, c.site)); }},
        {verb::get, "/payments/{payment}",
         [](Impl& s, const RouteContext& c, http::Responder r) { r(s.payment_detail(c)); }},
        {verb::put, "/ad-spend",
         [](Impl& s, const RouteContext& c, http::Responder r) {
           if (auto err = no_parameters(c.params)) return r(std::move(*err));
           s.put_ad_spend(c.req, c.site, std::move(r));
         }},
        // Payment Links (issue 8): projections/payment_links_routes.cpp.
        {verb::post, "/payment-links",
         [](Impl& s, const RouteContext& c, http::Responder r) {
           s.payment_links->create(c.req, c.site, c.params, std::move(r));
         }},
        {verb::get, "/payment-links",
         [](Impl& s, const RouteContext& c, http::Responder r) {
           s.payment_links->list(c.site, c.params, std::move(r));
         }},
    };
    return table;
  }

  http::Response payment_detail(const RouteContext& c) {
    if (auto err = no_parameters(c.params)) return std::move(*err);
    auto record = models_->payment(c.site, c.param);
    if (!record) return http::json_error(http::Status::not_found, "not_found", "no such payment");
    return http::json_response(http::Status::ok, std::move(*record));
  }

  http::Response health() const {
    return http::json_response(http::Status::ok,
                               std::string(R"({"status":"ok","caught_up":)") +
                                   (caught_up.load() ? "true" : "false") + "}");
  }

  void handle(http::Request&& req, http::Responder respond) {
    const auto parsed = boost::urls::parse_origin_form(req.target());
    if (!parsed) {
      return respond(http::json_error(http::Status::bad_request, "bad_request", "malformed target"));
    }
    const std::string path = parsed->path();
    if (path == "/healthz") return respond(health());
    if (path == "/" || path == "/index.html") {
      http::Response res{http::Status::ok, req.version()};
      res.set(boost::beast::http::field::content_type, "text/html; charset=utf-8");
      res.set(boost::beast::http::field::cache_control, "no-cache");
      res.set("Content-Security-Policy",
              "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
              "img-src 'self' data:");
      res.body() = std::string(dashboard_html());
      res.prepare_payload();
      return respond(std::move(res));
    }
    if (path == "/metrics") {
      http::Response res{http::Status::ok, req.version()};
      res.set(boost::beast::http::field::content_type, "text/plain; version=0.0.4");
      res.body() = metrics.render();
      res.prepare_payload();
      return respond(std::move(res));
    }
    const auto target = site_path(path);
    if (!target) return respond(http::json_error(http::Status::not_found, "not_found", "no such route"));
    // Authentication comes before routing: without the site's token nothing, not even whether a
    // route exists, is revealed.
    if (auto denied = authorize(req, target->site)) return respond(std::move(*denied));
    std::string allow;
    std::string param;
    const auto params = parsed->params();
    for (const auto& route : routes()) {
      if (!match_route(route.path, target->rest, param)) continue;
      if (route.method == req.method()) {
        return route.handler(*this, RouteContext{req, target->site, param, params}, std::move(respond));
      }
      if (!allow.empty()) allow += ", ";
      allow += std::string(boost::beast::http::to_string(route.method));
    }
    if (!allow.empty()) {
      auto res = http::json_error(http::Status::method_not_allowed, "method_not_allowed",
                                  "this route answers " + allow);
      res.set(boost::beast::http::field::allow, allow);
      return respond(std::move(res));
    }
    respond(http::json_error(http::Status::not_found, "not_found", "no such route"));
  }

  // Assigns every partition of both topics (each query instance keeps complete read models), at
  // the positions stored with the read models; waits for the topics to exist.
  bool assign_all() {
    const std::array<std::string, 2> names{
        common::topics::name(config.kafka, common::topics::kAttributedRevenue),
        common::topics::name(config.kafka, common::topics::kAdSpend)};
    auto next_warning = std::chrono::steady_clock::now();
    while (!stopping.load()) {
      kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(16));
      std::size_t found = 0;
      for (const auto& name : names) {
        rd_kafka_topic_t* rkt = rd_kafka_topic_new(consumer.get(), name.c_str(), nullptr);
        const rd_kafka_metadata_t* md = nullptr;
        const auto err = rd_kafka_metadata(consumer.get(), 0, rkt, &md, 5000);
        rd_kafka_topic_destroy(rkt);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == 0 &&
            md->topics[0].partition_cnt > 0) {
          ++found;
          for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
            const std::int32_t partition = md->topics[0].partitions[i].id;
            const auto next = models_->next_offset(name, partition);
            rd_kafka_topic_partition_list_add(list.get(), name.c_str(), partition)->offset =
                next ? *next : RD_KAFKA_OFFSET_BEGINNING;
          }
        }
        if (md != nullptr) rd_kafka_metadata_destroy(md);
      }
      if (found == names.size()) {
        {
          std::lock_guard lock(progress_mutex);
          for (int i = 0; i < list->cnt; ++i) {
            pending_eof.insert({list->elems[i].topic, list->elems[i].partition});
          }
        }
        if (auto err = rd_kafka_assign(consumer.get(), list.get())) {
          throw std::runtime_error(std::string("query: assign failed: ") + rd_kafka_err2str(err));
        }
        spdlog::info("query: consuming {} partitions of {} and {}", list->cnt, names[0], names[1]);
        return true;
      }
      if (std::chrono::steady_clock::now() >= next_warning) {
        spdlog::warn("query: waiting for topics {} and {} (run `revtrace topics create`)", names[0],
                     names[1]);
        next_warning = std::chrono::steady_clock::now() + 30s;
      }
      std::this_thread::sleep_for(500ms);  // metadata retry back-off
    }
    return false;
  }

  void reached_end(const rd_kafka_message_t& m) {
    std::lock_guard lock(progress_mutex);
    if (pending_eof.erase({rd_kafka_topic_name(m.rkt), m.partition}) == 0 || !pending_eof.empty()) {
      return;
    }
    caught_up = true;
    spdlog::info("query: caught up ({} attributed-revenue records applied since start)",
                 applied.value());
  }

  void consume() {
    try {
      if (!assign_all()) return;
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return;
    }
    while (!stopping.load()) {
      kafka::MessagePtr m(rd_kafka_consumer_poll(consumer.get(), 100));
      if (!m) continue;
      if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          reached_end(*m);
        } else {
          spdlog::warn("query: consumer: {}", rd_kafka_message_errstr(m.get()));
        }
        continue;
      }
      const std::string topic = rd_kafka_topic_name(m->rkt);
      const TopicPosition position{topic, m->partition, m->offset};
      const std::string_view value(static_cast<const char*>(m->payload), m->len);
      if (common::topics::contract_name(config.kafka, topic) == common::topics::kAdSpend) {
        if (auto entry = parse_ad_spend_record(value)) {
          models_->apply_spend(*entry, position);
        } else {
          spdlog::warn("query: skipping malformed ad-spend record at partition {} offset {}",
                       m->partition, m->offset);
          models_->skip(position);
        }
        continue;
      }
      if (m->payload == nullptr) {
        models_->retire(m->key != nullptr
                            ? std::string_view(static_cast<const char*>(m->key), m->key_len)
                            : std::string_view(),
                        position);
        applied.inc();
        continue;
      }
      std::string error;
      if (!models_->apply(value, error, position)) {
        spdlog::warn("query: skipping record at partition {} offset {}: {}", m->partition,
                     m->offset, error);
      }
      applied.inc();
    }
  }

  const common::Config& config;
  common::metrics::Registry& metrics;
  common::metrics::Counter& applied;
  std::vector<std::pair<std::string, Digest>> token_digests;  // (site id, digest of a token)
  std::unique_ptr<ReadModels> models_;
  kafka::HandlePtr consumer;
  std::unique_ptr<kafka::Producer> producer;
  std::unique_ptr<PaymentLinksRoutes> payment_links;  // uses `producer`
  std::unique_ptr<http::Server> server;
  std::atomic<bool> stopping{false};
  std::atomic<bool> caught_up{false};
  std::mutex progress_mutex;
  std::set<std::pair<std::string, std::int32_t>> pending_eof;  // partitions not yet read to the end
  std::thread worker;
};

void QueryService::drop_read_models(const common::Config& config) {
  ReadModels::drop(config.query.data_dir);
  spdlog::info("query: dropped the read models in {}; they are rebuilt from offset 0",
               config.query.data_dir);
}

std::vector<SiteRouteInfo> QueryService::site_routes() {
  std::vector<SiteRouteInfo> out;
  for (const auto& r : Impl::routes()) {
    out.push_back({std::string(boost::beast::http::to_string(r.method)), std::string(r.path)});
  }
  return out;
}

QueryService::QueryService(const common::Config& config, common::metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(config, metrics)) {
  Impl* p = impl_.get();
  metrics.gauge_fn("revtrace_query_caught_up",
                   "1 once every partition was read to its end since start, else 0.", "",
                   [p] { return p->caught_up.load() ? 1.0 : 0.0; });
  for (const auto& site : config.sites) {
    for (const auto& token : site.query_tokens) impl_->token_digests.emplace_back(site.id, digest(token));
  }
}

QueryService::~QueryService() { stop(); }

void QueryService::start() {
  auto& impl = *impl_;
  impl.models_ = std::make_unique<ReadModels>(impl.config.query.data_dir);
  // No consumer group: positions are stored in the read models themselves, in the same atomic
  // write as each record's changes. Every partition is assigned; a crash resumes exactly, and an
  // empty read-model directory starts from offset 0 (a rebuild).
  impl.consumer = kafka::make_handle(
      RD_KAFKA_CONSUMER, kafka::make_conf(impl.config.kafka, {{"group.id", impl.config.query.group_id},
                                                              {"isolation.level", "read_committed"},
                                                              {"enable.auto.commit", "false"},
                                                              {"enable.partition.eof", "true"},
                                                              {"auto.offset.reset", "earliest"}}));
  rd_kafka_poll_set_consumer(impl.consumer.get());
  impl.producer = std::make_unique<kafka::Producer>(impl.config.kafka);
  impl.payment_links =
      std::make_unique<PaymentLinksRoutes>(impl.config, *impl.producer, impl.metrics);
  const auto ep = common::parse_endpoint(impl.config.query.listen, "query.listen");
  http::ServerOptions opts;
  opts.host = ep.host;
  opts.port = ep.port;
  Impl* p = impl_.get();
  impl.server = std::make_unique<http::Server>(
      opts, [p](http::Request&& req, http::Responder respond) { p->handle(std::move(req), respond); });
  impl.server->start();
  impl.worker = std::thread([p] { p->consume(); });
  spdlog::info("query: serving on {}:{}", opts.host, impl.server->port());
}

std::uint16_t QueryService::port() const noexcept {
  return impl_->server ? impl_->server->port() : 0;
}

bool QueryService::caught_up() const noexcept { return impl_->caught_up.load(); }

void QueryService::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  if (impl_->server) impl_->server->stop(2s);
  if (impl_->worker.joinable()) impl_->worker.join();
  if (impl_->payment_links) impl_->payment_links->stop();
  if (impl_->consumer) rd_kafka_consumer_close(impl_->consumer.get());
  if (impl_->producer) (void)impl_->producer->flush(5s);
}

}  // namespace revtrace::projections
