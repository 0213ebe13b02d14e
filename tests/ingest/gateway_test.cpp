// The gateway (`revtrace gateway`, a child process) on a real Kafka broker: the records it writes
// (exactly once, exactly the documented fields), every kind of bad input, slow clients and the
// connection limit, the Stripe signature matrix with Stripe's own npm library as the oracle, a
// broker outage (a private broker stopped and started again) and SIGTERM under load.
//
// Each test case has its own topics (kafka.topic_prefix) so it reads back exactly what it wrote.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "tests/support/test_support.hpp"

using namespace revtrace::testing;
using namespace std::chrono_literals;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string source_dir() {
  const char* s = std::getenv("REVTRACE_SOURCE_DIR");
  if (s == nullptr) throw std::runtime_error("REVTRACE_SOURCE_DIR is not set (run through ctest)");
  return s;
}

struct GatewayOptions {
  std::string bootstrap;
  std::size_t producer_queue_max = 100000;
  std::int64_t webhook_ack_timeout_ms = 5000;
  std::string maxmind_db;        // gateway.maxmind_db when not empty
  std::string client_ip_header;  // gateway.client_ip_header when not empty
};

// One gateway with its own topics, configuration and log, on the given broker.
struct GatewayUnderTest {
  explicit GatewayUnderTest(const GatewayOptions& o)
      : bootstrap(o.bootstrap), dir(temp_dir("revtrace-gw")), prefix(unique("gw") + "."),
        port(free_port()) {
    config = dir + "/revtrace.toml";
    std::ofstream out(config);
    out << "log_level = \"info\"\n"
        << "[kafka]\nbootstrap = \"" << bootstrap << "\"\npartitions = 3\ntopic_prefix = \"" << prefix << "\"\n"
        << "[gateway]\nlisten = \"127.0.0.1:" << port << "\"\nthreads = 2\n"
        << "max_body_bytes = 4096\nmax_batch = 5\nmax_connections = 20\n"
        << "header_timeout_ms = 2000\nbody_timeout_ms = 2000\n"
        << "webhook_ack_timeout_ms = " << o.webhook_ack_timeout_ms << "\n"
        << "producer_queue_max = " << o.producer_queue_max << "\n"
        << "trusted_country_header = \"CF-IPCountry\"\n"
        << (o.maxmind_db.empty() ? "" : "maxmind_db = \"" + o.maxmind_db + "\"\n")
        << (o.client_ip_header.empty() ? "" : "client_ip_header = \"" + o.client_ip_header + "\"\n")
        << "[[sites]]\nid = \"shop\"\nwebhook_secrets = [\"whsec_old\", \"whsec_new\"]\n"
        << "allowed_origins = [\"https://shop.example\"]\n"
        << "[[sites]]\nid = \"blog\"\nwebhook_secrets = [\"whsec_blog\"]\nallowed_origins = [\"*\"]\n"
        << "[[sites]]\nid = \"nohook\"\n";
    out.close();
    ChildProcess create({revtrace_binary(), "topics", "create", "--config", config}, {}, dir + "/topics.log");
    const int status = create.wait(120s).value_or(-1);
    INFO("revtrace topics create: " << create.log());
    REQUIRE(status == 0);
  }

  void start() {
    child = std::make_unique<ChildProcess>(
        std::vector<std::string>{revtrace_binary(), "gateway", "--config", config}, std::map<std::string, std::string>{},
        dir + "/gateway.log");
    INFO(child->log());
    REQUIRE(wait_for_http(port, "/readyz", 60s));
  }

  [[nodiscard]] std::vector<TopicRecord> topic(const std::string& name) const {
    return read_topic(bootstrap, prefix + name);
  }

  std::string bootstrap;
  std::string dir;
  std::string prefix;
  std::uint16_t port;
  std::string config;
  std::unique_ptr<ChildProcess> child;
};

const std::map<std::string, std::string> kJson{{"Content-Type", "application/json"}};

// A keep-alive HTTP/1.1 connection (what browsers, servers and load balancers use).
class Connection {
 public:
  explicit Connection(std::uint16_t port) : stream_(ioc_) {
    stream_.expires_after(10s);
    stream_.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  }
  // Status 0 when the connection failed or was closed.
  HttpResult request(const std::string& method, const std::string& target, const std::string& body,
                     const std::map<std::string, std::string>& headers) {
    namespace http = boost::beast::http;
    HttpResult result;
    try {
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      req.set(http::field::host, "127.0.0.1");
      for (const auto& [k, v] : headers) req.set(k, v);
      req.body() = body;
      req.prepare_payload();
      stream_.expires_after(20s);
      http::write(stream_, req);
      http::response<http::string_body> res;
      http::read(stream_, buffer_, res);
      result.status = static_cast<int>(res.result_int());
      result.body = res.body();
      if (!res.keep_alive()) closed_ = true;
    } catch (const std::exception&) {
      result.status = 0;
      closed_ = true;
    }
    return result;
  }
  [[nodiscard]] bool closed() const noexcept { return closed_; }

 private:
  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  bool closed_ = false;
};

// A raw socket for clients that misbehave on purpose.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  [[nodiscard]] bool connected() const noexcept { return connected_; }
  void send(std::string_view bytes) { (void)::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  // Everything the server sends until it closes the connection or `timeout` passes.
  std::string read_until_closed(std::chrono::milliseconds timeout) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
  [[nodiscard]] bool closed() const noexcept { return closed_; }

 private:
  int fd_;
  bool connected_ = false;
  bool closed_ = false;
};

std::string run_node(const std::string& args) {
  const std::string cmd = "node " + source_dir() + "/tests/js/" + args;
  std::string out;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int status = ::pclose(pipe);
  INFO(cmd << " -> " << out);
  REQUIRE(status == 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// The Stripe-Signature header Stripe's own library (npm `stripe`) makes for this payload.
std::string stripe_library_header(const std::string& dir, const std::string& payload, const std::string& secret,
                                  std::int64_t timestamp) {
  const std::string file = dir + "/" + unique("payload") + ".json";
  std::ofstream(file, std::ios::binary) << payload;
  return run_node("stripe-header.mjs " + file + " " + secret + " " + std::to_string(timestamp));
}

// Validates records against schemas/<topic>.schema.json with ajv (an independent validator).
void validate_records(const std::string& dir, const std::string& contract_topic, const std::vector<TopicRecord>& records) {
  const std::string file = dir + "/" + contract_topic + ".ndjson";
  std::ofstream out(file);
  for (const auto& r : records) out << r.value << "\n";
  out.close();
  const auto verdict = run_node("validate-records.mjs " + source_dir() + "/schemas " + contract_topic + " " + file);
  CHECK_THAT(verdict, Catch::Contains("valid"));
}

std::string stripe_event(const std::string& id, const std::string& type = "checkout.session.completed") {
  return R"({"id":")" + id + R"(","object":"event","api_version":"2025-03-31.basil","created":1700000000,)"
         R"("livemode":false,"type":")" + type +
         R"(","data":{"object":{"id":"cs_test_1","object":"checkout.session","amount_total":4900,)"
         R"("currency":"usd","metadata":{"note":"ünïcode \"quoted\""}}}})" "\n";
}

std::map<std::string, std::string> signed_headers(const std::string& header) {
  return {{"Content-Type", "application/json; charset=utf-8"}, {"Stripe-Signature", header}};
}

std::string pageview(const std::string& site, const std::string& event_id) {
  return R"({"type":"pageview","site_id":")" + site + R"(","visitor_id":"v-)" + event_id + R"(","event_id":")" +
         event_id + R"(","url":"https://shop.example/p?utm_source=x"})";
}

std::string_view field(simdjson::dom::element doc, const char* name) {
  std::string_view v;
  if (doc[name].get(v)) return {};
  return v;
}

}  // namespace

TEST_CASE("gateway: every accepted event is in its topic exactly once with the documented fields",
          "[kafka][gateway][records]") {
  GatewayUnderTest gw({kafka_bootstrap()});
  gw.start();
  INFO("logs in " << gw.dir);
  const std::string ua =
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
  const std::int64_t before = now_ms();
  // A pageview from the pixel (JSON, CORS), a sendBeacon batch (text/plain), a checkout redirect
  // without an event id, and the no-JavaScript GIF.
  auto r = http_request(gw.port, "POST", "/v1/events",
                        R"({"type":"pageview","site_id":"shop","visitor_id":"v1","session_id":"s1","event_id":"pv-1",)"
                        R"("occurred_at":1700000000000,"url":"https://shop.example/?utm_source=news","referrer":"",)"
                        R"("title":"Home","screen":"390x844","language":"en-US","timezone":"Europe/Berlin","extra":true})",
                        {{"Content-Type", "application/json"}, {"User-Agent", ua}, {"CF-IPCountry", "de"},
                         {"Origin", "https://shop.example"}});
  CHECK(r.status == 202);
  CHECK(r.body == R"({"accepted":1})");
  CHECK(r.headers["access-control-allow-origin"] == "https://shop.example");
  r = http_request(gw.port, "POST", "/v1/events",
                   R"([{"type":"identify","site_id":"blog","visitor_id":"v2","event_id":"id-1","email":"a@b.example","traits":{"plan":"pro"}},)"
                   R"({"type":"custom","site_id":"blog","visitor_id":"v2","event_id":"cu-1","name":"signup","props":{"tier":2}}])",
                   {{"Content-Type", "text/plain;charset=UTF-8"}, {"Origin", "https://blog.example"}});
  CHECK(r.status == 202);
  CHECK(r.body == R"({"accepted":2})");
  CHECK(r.headers["access-control-allow-origin"] == "https://blog.example");
  r = http_request(gw.port, "POST", "/v1/events",
                   R"({"type":"checkout_redirect","site_id":"shop","visitor_id":"v1","url":"https://shop.example/buy","checkout_session_id":"cs_test_9"})",
                   kJson);
  CHECK(r.status == 202);
  r = http_request(gw.port, "GET",
                   "/v1/events.gif?type=pageview&site_id=shop&visitor_id=v3&event_id=gif-1&url=https%3A%2F%2Fshop.example%2Fa%3Fb%3D1&title=Caf%C3%A9+Menu",
                   {}, {{"User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Mobile/15E148 Safari/604.1"}});
  CHECK(r.status == 200);
  CHECK(r.headers["content-type"] == "image/gif");
  CHECK(r.body.size() == 43);
  const std::int64_t after = now_ms();

  std::vector<TopicRecord> web;
  REQUIRE(wait_until(30s, [&] { return (web = gw.topic("revtrace.web-events.v1")).size() >= 4; }));
  std::vector<TopicRecord> redirects;
  REQUIRE(wait_until(30s, [&] { return (redirects = gw.topic("revtrace.checkout-redirects.v1")).size() >= 1; }));
  REQUIRE(web.size() == 4);
  REQUIRE(redirects.size() == 1);

  simdjson::dom::parser parser;
  std::map<std::string, std::string> by_id;  // event_id -> record with received_at checked and fixed
  auto normalise = [&](const TopicRecord& rec) {
    simdjson::dom::element doc = parser.parse(rec.value);
    const std::int64_t received = doc["received_at"].get_int64().value();
    CHECK(received >= before);
    CHECK(received <= after);
    std::string value = rec.value;
    const std::string stamp = "\"received_at\":" + std::to_string(received);
    value.replace(value.find(stamp), stamp.size(), "\"received_at\":T");
    const std::string id(field(doc, "event_id"));
    CHECK(rec.key == std::string(field(doc, "site_id")));  // keyed by site_id
    CHECK(by_id.emplace(id, value).second);                // exactly once
    return id;
  };
  for (const auto& rec : web) normalise(rec);
  const std::string redirect_id = normalise(redirects[0]);
  CHECK(redirect_id.size() == 26);  // generated by the gateway

  CHECK(by_id["pv-1"] ==
        R"({"event_id":"pv-1","type":"pageview","site_id":"shop","visitor_id":"v1","session_id":"s1",)"
        R"("occurred_at":1700000000000,"received_at":T,"url":"https://shop.example/?utm_source=news",)"
        R"("title":"Home","device":{"browser":"Chrome","os":"macOS","device_class":"desktop"},"country":"DE",)"
        R"("screen":"390x844","language":"en-US","timezone":"Europe/Berlin"})");
  CHECK(by_id["id-1"] ==
        R"({"event_id":"id-1","type":"identify","site_id":"blog","visitor_id":"v2","received_at":T,)"
        R"("email":"a@b.example","traits":{"plan":"pro"}})");
  CHECK(by_id["cu-1"] ==
        R"({"event_id":"cu-1","type":"custom","site_id":"blog","visitor_id":"v2","received_at":T,)"
        R"("name":"signup","props":{"tier":2}})");
  CHECK(by_id["gif-1"] ==
        R"({"event_id":"gif-1","type":"pageview","site_id":"shop","visitor_id":"v3","received_at":T,)"
        R"("url":"https://shop.example/a?b=1","title":"Café Menu","device":{"browser":"Safari","os":"iOS","device_class":"mobile"}})");
  CHECK(by_id[redirect_id] ==
        R"({"event_id":")" + redirect_id +
            R"(","type":"checkout_redirect","site_id":"shop","visitor_id":"v1","received_at":T,)"
            R"("checkout_session_id":"cs_test_9","url":"https://shop.example/buy"})");
  // No record carries an IP address or the User-Agent string.
  for (const auto& rec : web) {
    CHECK(rec.value.find("127.0.0.1") == std::string::npos);
    CHECK(rec.value.find("Mozilla") == std::string::npos);
  }
  validate_records(gw.dir, "revtrace.web-events.v1", web);
  validate_records(gw.dir, "revtrace.checkout-redirects.v1", redirects);

  // /metrics counts what happened.
  auto m = http_request(gw.port, "GET", "/metrics");
  CHECK(m.status == 200);
  CHECK_THAT(m.body, Catch::Contains(R"(revtrace_gateway_requests_total{route="/v1/events",status="202"} 3)"));
  CHECK_THAT(m.body, Catch::Contains(R"(revtrace_gateway_requests_total{route="/v1/events.gif",status="200"} 1)"));
  CHECK_THAT(m.body, Catch::Contains(R"(revtrace_gateway_request_duration_seconds_bucket{route="/v1/events",le="+Inf"} 3)"));
  CHECK_THAT(m.body, Catch::Contains("revtrace_gateway_events_accepted_total 5"));
  CHECK_THAT(m.body, Catch::Contains("revtrace_gateway_producer_queue_depth 0"));
  CHECK_THAT(m.body, Catch::Contains("revtrace_gateway_delivery_failures 0"));
  CHECK_THAT(m.body, Catch::Contains("revtrace_gateway_broker_reachable 1"));

  gw.child->signal(SIGTERM);
  CHECK(gw.child->wait(60s).value_or(-1) == 0);
}

TEST_CASE("gateway: bad input gets a clear answer and is never written", "[kafka][gateway][bad_input]") {
  GatewayUnderTest gw({kafka_bootstrap()});
  gw.start();
  INFO("logs in " << gw.dir);
  const std::string ok = pageview("shop", "never");
  std::string deep = R"({"type":"pageview","x":)" + std::string(30, '[') + std::string(30, ']') + "}";
  struct Case {
    std::string what, method, target, body;
    std::map<std::string, std::string> headers;
    int status;
    std::string error;  // a substring of the JSON body
  };
  const std::vector<Case> cases{
      {"body over the limit", "POST", "/v1/events", std::string(5000, ' ') + ok, kJson, 413, "body_too_large"},
      {"batch over the limit", "POST", "/v1/events", "[" + ok + "," + ok + "," + ok + "," + ok + "," + ok + "," + ok + "]", kJson, 413, "at most 5 events"},
      {"malformed JSON", "POST", "/v1/events", R"({"type":"pageview",)", kJson, 400, "not valid JSON"},
      {"invalid UTF-8", "POST", "/v1/events", "{\"type\":\"pagevi\xc3\x28w\"}", kJson, 400, "not valid UTF-8"},
      {"deep nesting", "POST", "/v1/events", deep, kJson, 400, "nested deeper than 16 levels"},
      {"missing field", "POST", "/v1/events", R"({"type":"pageview","site_id":"shop","url":"https://a.example/"})", kJson, 400, "event.visitor_id is required"},
      {"ill-typed field", "POST", "/v1/events", R"({"type":"pageview","site_id":"shop","visitor_id":5,"url":"https://a.example/"})", kJson, 400, "event.visitor_id must be a string"},
      {"half a batch bad", "POST", "/v1/events", "[" + ok + R"(,{"type":"custom","site_id":"shop","visitor_id":"v"}])", kJson, 400, "events[1].name is required"},
      {"unknown site", "POST", "/v1/events", pageview("elsewhere", "x"), kJson, 404, "'elsewhere' is not a configured site"},
      {"wrong method", "PUT", "/v1/events", ok, kJson, 405, "method_not_allowed"},
      {"wrong media type", "POST", "/v1/events", ok, {{"Content-Type", "application/x-www-form-urlencoded"}}, 415, "unsupported_media_type"},
      {"no media type", "POST", "/v1/events", ok, {}, 415, "unsupported_media_type"},
      {"origin not allowed", "POST", "/v1/events", ok, {{"Content-Type", "application/json"}, {"Origin", "https://evil.example"}}, 403, "not in the allowed_origins of site 'shop'"},
      {"gif without site", "GET", "/v1/events.gif?type=pageview&visitor_id=v&url=https%3A%2F%2Fa.example%2F", "", {}, 400, "site_id is required"},
      {"gif invalid UTF-8", "GET", "/v1/events.gif?type=pageview&site_id=shop&visitor_id=v&url=https%3A%2F%2Fa.example%2F&title=%C3%28", "", {}, 400, "not valid UTF-8"},
      {"gif posted", "POST", "/v1/events.gif", "", {}, 405, "method_not_allowed"},
      {"webhook unknown site", "POST", "/v1/webhooks/stripe/elsewhere", stripe_event("evt_x"), kJson, 404, "unknown_site"},
      {"webhook site without secret", "POST", "/v1/webhooks/stripe/nohook", stripe_event("evt_x"), kJson, 404, "no_webhook_secret"},
      {"webhook wrong method", "GET", "/v1/webhooks/stripe/shop", "", {}, 405, "method_not_allowed"},
      {"webhook wrong media type", "POST", "/v1/webhooks/stripe/shop", stripe_event("evt_x"), {{"Content-Type", "text/plain"}}, 415, "unsupported_media_type"},
      {"webhook over the limit", "POST", "/v1/webhooks/stripe/shop", std::string(1024 * 1024 + 1, ' '), kJson, 413, "body_too_large"},
      {"unknown route", "GET", "/v2/anything", "", {}, 404, "not_found"},
      {"health posted", "POST", "/healthz", "x", kJson, 405, "method_not_allowed"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto r = http_request(gw.port, c.method, c.target, c.body, c.headers);
    CHECK(r.status == c.status);
    CHECK(r.headers["content-type"] == "application/json");
    CHECK_THAT(r.body, Catch::Contains(c.error));
  }
  // A chunked body over the limit is cut off while it is read.
  {
    RawClient raw(gw.port);
    REQUIRE(raw.connected());
    raw.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk(3000, ' ');
    for (int i = 0; i < 2; ++i) raw.send("bb8\r\n" + chunk + "\r\n");
    const auto answer = raw.read_until_closed(10s);
    CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 413"));
  }
  // Malformed HTTP.
  {
    RawClient raw(gw.port);
    raw.send("GARBAGE\r\n\r\n");
    CHECK_THAT(raw.read_until_closed(10s), Catch::StartsWith("HTTP/1.1 400"));
  }

  // CORS preflight: allowed for an Origin some site allows, without CORS headers otherwise.
  auto pre = http_request(gw.port, "OPTIONS", "/v1/events", {},
                          {{"Origin", "https://shop.example"}, {"Access-Control-Request-Method", "POST"}});
  CHECK(pre.status == 204);
  CHECK(pre.headers["access-control-allow-origin"] == "https://shop.example");
  CHECK(pre.headers["access-control-allow-methods"] == "POST, OPTIONS");
  CHECK(pre.headers["access-control-allow-headers"] == "Content-Type");

  // The pixel: cached, with an ETag that answers 304.
  auto js = http_request(gw.port, "GET", "/revtrace.js");
  CHECK(js.status == 200);
  CHECK_THAT(js.headers["content-type"], Catch::StartsWith("application/javascript"));
  CHECK(js.headers["cache-control"] == "public, max-age=3600");
  std::ifstream script(source_dir() + "/ingest/pixel/revtrace.js", std::ios::binary);
  CHECK(js.body == std::string(std::istreambuf_iterator<char>(script), {}));
  const std::string etag = js.headers["etag"];
  REQUIRE(etag.size() == 34);
  auto cached = http_request(gw.port, "GET", "/revtrace.js", {}, {{"If-None-Match", etag}});
  CHECK(cached.status == 304);
  CHECK(cached.body.empty());
  CHECK(cached.headers["etag"] == etag);
  CHECK(http_request(gw.port, "GET", "/revtrace.js", {}, {{"If-None-Match", "\"x\", W/" + etag}}).status == 304);
  CHECK(http_request(gw.port, "GET", "/revtrace.js", {}, {{"If-None-Match", "\"other\""}}).status == 200);

  // Nothing refused reached Kafka; the gateway still answers.
  CHECK(http_request(gw.port, "GET", "/healthz").status == 200);
  CHECK(gw.topic("revtrace.web-events.v1").empty());
  CHECK(gw.topic("revtrace.stripe-events.v1").empty());
  auto m = http_request(gw.port, "GET", "/metrics");
  CHECK_THAT(m.body, Catch::Contains(R"(revtrace_gateway_requests_total{route="/v1/events",status="400"} 6)"));
  CHECK_THAT(m.body, Catch::Contains(R"(revtrace_gateway_requests_total{route="/v1/events",status="415"} 2)"));
  gw.child->signal(SIGTERM);
  CHECK(gw.child->wait(60s).value_or(-1) == 0);
}

TEST_CASE("gateway: slow and stalled clients and too many connections get answers, the gateway stays up",
          "[kafka][gateway][slow]") {
  GatewayUnderTest gw({kafka_bootstrap()});
  gw.start();
  INFO("logs in " << gw.dir);
  {  // A header that never ends: 408 after header_timeout_ms (2 s).
    RawClient raw(gw.port);
    raw.send("POST /v1/events HTTP/1.1\r\nHost: x\r\n");
    const auto t0 = std::chrono::steady_clock::now();
    const auto answer = raw.read_until_closed(15s);
    CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 408"));
    CHECK_THAT(answer, Catch::Contains("request header not received in time"));
    CHECK(raw.closed());
    CHECK(std::chrono::steady_clock::now() - t0 >= 1500ms);
  }
  {  // A body that stalls half way: 408 after body_timeout_ms.
    RawClient raw(gw.port);
    raw.send("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":");
    const auto answer = raw.read_until_closed(15s);
    CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 408"));
    CHECK_THAT(answer, Catch::Contains("request body not received in time"));
  }
  {  // More connections than max_connections (20): the extra one gets 503 and is closed.
    std::vector<std::unique_ptr<RawClient>> held;
    for (int i = 0; i < 20; ++i) {
      held.push_back(std::make_unique<RawClient>(gw.port));
      held.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // started, never finished
    }
    RawClient extra(gw.port);
    const auto answer = extra.read_until_closed(10s);
    CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 503"));
    CHECK_THAT(answer, Catch::Contains("too_many_connections"));
  }
  // Every connection above was dropped by its timeout or closed: the gateway serves again.
  CHECK(wait_until(20s, [&] { return http_request(gw.port, "GET", "/healthz").status == 200; }));
  CHECK(gw.child->running());
  gw.child->signal(SIGTERM);
  CHECK(gw.child->wait(60s).value_or(-1) == 0);
}

TEST_CASE("gateway: the Stripe signature matrix, with Stripe's own library as the oracle",
          "[kafka][gateway][signatures]") {
  GatewayUnderTest gw({kafka_bootstrap()});
  gw.start();
  INFO("logs in " << gw.dir);
  const std::int64_t now = now_ms() / 1000;
  const std::string target = "/v1/webhooks/stripe/shop";
  struct Case {
    std::string what;
    std::string event_id;
    std::string header;  // empty: no header
    int status;
    std::string error;
    std::string body_suffix;  // appended after signing (tampering)
  };
  auto lib = [&](const std::string& id, const std::string& secret, std::int64_t t) {
    return stripe_library_header(gw.dir, stripe_event(id), secret, t);
  };
  auto ours = [&](const std::string& id, const std::string& secret, std::int64_t t) {
    return stripe_signature(stripe_event(id), secret, t);
  };
  // The test support's own HMAC agrees with Stripe's library.
  REQUIRE(lib("evt_cmp", "whsec_new", now) == ours("evt_cmp", "whsec_new", now));
  const std::string v1_other = ours("evt_v0", "whsec_other", now).substr(std::to_string(now).size() + 6);
  const std::vector<Case> cases{
      {"Stripe's library, current secret", "evt_lib_new", lib("evt_lib_new", "whsec_new", now), 200, "", ""},
      {"Stripe's library, the secret being rotated out", "evt_lib_old", lib("evt_lib_old", "whsec_old", now), 200, "", ""},
      {"a second v1 that matches", "evt_two_v1",
       "t=" + std::to_string(now) + ",v1=" + v1_other + ",v1=" + ours("evt_two_v1", "whsec_new", now).substr(std::to_string(now).size() + 6),
       200, "", ""},
      {"v0 next to a valid v1", "evt_v0v1", lib("evt_v0v1", "whsec_new", now) + ",v0=" + v1_other, 200, "", ""},
      {"a timestamp 4 minutes old", "evt_240", lib("evt_240", "whsec_new", now - 240), 200, "", ""},
      {"another site's secret", "evt_blog", lib("evt_blog", "whsec_blog", now), 400, "signature_mismatch", ""},
      {"a stale timestamp", "evt_stale", lib("evt_stale", "whsec_new", now - 400), 400, "timestamp_outside_tolerance", ""},
      {"only v0", "evt_v0only", "t=" + std::to_string(now) + ",v0=" + v1_other, 400, "signature_invalid", ""},
      {"no header", "evt_none", "", 400, "signature_invalid", ""},
      {"garbage header", "evt_garbage", "nonsense", 400, "signature_invalid", ""},
      {"a tampered body", "evt_tampered", lib("evt_tampered", "whsec_new", now), 400, "signature_mismatch", " "},
  };
  std::set<std::string> accepted;
  for (const auto& c : cases) {
    INFO(c.what << ": " << c.header);
    std::map<std::string, std::string> headers{{"Content-Type", "application/json; charset=utf-8"}};
    if (!c.header.empty()) headers["Stripe-Signature"] = c.header;
    auto r = http_request(gw.port, "POST", target, stripe_event(c.event_id) + c.body_suffix, headers);
    CHECK(r.status == c.status);
    if (c.status == 200) {
      CHECK(r.body == R"({"received":true})");
      accepted.insert(c.event_id);
    } else {
      CHECK_THAT(r.body, Catch::Contains(c.error));
    }
  }
  // A signed body that is not a Stripe event.
  const std::string not_event = R"({"hello":"world"})";
  auto r = http_request(gw.port, "POST", target, not_event,
                        signed_headers(stripe_library_header(gw.dir, not_event, "whsec_new", now)));
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Catch::Contains("not_a_stripe_event"));

  // 200 was only answered after Kafka acknowledged: the records are there right away, each
  // accepted event exactly once, with the raw body byte for byte.
  const auto records = gw.topic("revtrace.stripe-events.v1");
  simdjson::dom::parser parser;
  std::multiset<std::string> ids;
  for (const auto& rec : records) {
    simdjson::dom::element doc = parser.parse(rec.value);
    const std::string id(field(doc, "event_id"));
    ids.insert(id);
    CHECK(rec.key == "shop");
    CHECK(field(doc, "payload") == stripe_event(id));
    CHECK(field(doc, "site_id") == "shop");
    CHECK(field(doc, "source") == "webhook");
    CHECK(field(doc, "event_type") == "checkout.session.completed");
    CHECK(field(doc, "api_version") == "2025-03-31.basil");
  }
  CHECK(ids == std::multiset<std::string>(accepted.begin(), accepted.end()));
  validate_records(gw.dir, "revtrace.stripe-events.v1", records);
  gw.child->signal(SIGTERM);
  CHECK(gw.child->wait(60s).value_or(-1) == 0);
}

TEST_CASE("gateway: broker stopped -> webhooks 503 and nothing acknowledged; broker back -> 200",
          "[kafka][gateway][broker]") {
  const std::string broker_dir = temp_dir("revtrace-gw-broker");
  auto run_script = [&](const std::string& script, const std::string& extra) {
    return std::system((source_dir() + "/deploy/kafka/" + script + " --dir " + broker_dir + extra + " >> " +
                        broker_dir + ".log 2>&1")
                           .c_str());
  };
  REQUIRE(run_script("start.sh", "") == 0);
  std::string bootstrap;
  std::ifstream(broker_dir + "/bootstrap") >> bootstrap;
  GatewayUnderTest gw({bootstrap, 20, 3000});
  gw.start();
  INFO("logs in " << gw.dir << " and " << broker_dir);
  auto hook = [&](const std::string& id) {
    return http_request(gw.port, "POST", "/v1/webhooks/stripe/shop", stripe_event(id),
                        signed_headers(stripe_signature(stripe_event(id), "whsec_new", now_ms() / 1000)));
  };
  REQUIRE(hook("evt_before").status == 200);
  REQUIRE(http_request(gw.port, "POST", "/v1/events", pageview("shop", "pv-before"), kJson).status == 202);

  REQUIRE(run_script("stop.sh", " --keep") == 0);
  // Webhooks are refused (Stripe retries), readiness goes down, pixel events are queued until the
  // bounded queue is full and then refused with Retry-After too.
  for (const auto* id : {"evt_down_1", "evt_down_2"}) {
    auto r = hook(id);
    CHECK(r.status == 503);
    CHECK(r.headers["retry-after"] == "2");
  }
  CHECK(wait_until(30s, [&] { return http_request(gw.port, "GET", "/readyz").status == 503; }));
  std::set<std::string> queued;
  HttpResult full;
  for (int i = 0; i < 40 && full.status != 503; ++i) {
    const std::string id = "pv-down-" + std::to_string(i);
    auto r = http_request(gw.port, "POST", "/v1/events", pageview("shop", id), kJson);
    if (r.status == 202) queued.insert(id);
    else full = r;
  }
  CHECK(full.status == 503);
  CHECK(full.headers["retry-after"] == "2");
  CHECK_THAT(full.body, Catch::Contains("queue to Kafka is full"));
  CHECK(queued.size() >= 10);

  REQUIRE(run_script("start.sh", "") == 0);  // same port, same data
  CHECK(wait_until(60s, [&] { return http_request(gw.port, "GET", "/readyz").status == 200; }));
  // Stripe retries the refused events; they are acknowledged again once Kafka takes them.
  std::vector<int> retries;
  CHECK(wait_until(60s, [&] {
    const int status = hook("evt_down_1").status;
    retries.push_back(status);
    return status == 200;
  }, 500ms));
  CHECK(hook("evt_after").status == 200);

  std::map<std::string, int> web;
  CHECK(wait_until(60s, [&] {
    web.clear();
    for (const auto& rec : gw.topic("revtrace.web-events.v1")) {
      simdjson::dom::parser parser;
      web[std::string(field(parser.parse(rec.value), "event_id"))]++;
    }
    return web.size() >= queued.size() + 1;
  }));
  // Every acknowledged pixel event is there exactly once, including those queued during the outage.
  CHECK(web["pv-before"] == 1);
  for (const auto& id : queued) CHECK(web[id] == 1);
  CHECK(web.size() == queued.size() + 1);
  std::map<std::string, int> hooks;
  for (const auto& rec : gw.topic("revtrace.stripe-events.v1")) {
    simdjson::dom::parser parser;
    hooks[std::string(field(parser.parse(rec.value), "event_id"))]++;
  }
  CHECK(hooks["evt_before"] == 1);
  CHECK(hooks["evt_after"] == 1);
  CHECK(hooks["evt_down_1"] >= 1);  // acknowledged on a retry (an earlier timed-out try may also be in)
  gw.child->signal(SIGTERM);
  CHECK(gw.child->wait(60s).value_or(-1) == 0);
  run_script("stop.sh", "");
}

TEST_CASE("gateway: SIGTERM under load loses nothing that was acknowledged", "[kafka][gateway][sigterm]") {
  GatewayUnderTest gw({kafka_bootstrap()});
  gw.start();
  INFO("logs in " << gw.dir);
  std::mutex mutex;
  std::set<std::string> acked_events;
  std::set<std::string> acked_hooks;
  std::atomic<int> answered{0};
  std::atomic<bool> stop_clients{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      int n = 0;
      while (!stop_clients.load()) {
        std::unique_ptr<Connection> connection;
        try {
          connection = std::make_unique<Connection>(gw.port);
        } catch (const std::exception&) {
          break;  // after SIGTERM the listener is closed
        }
        Connection& conn = *connection;
        while (!conn.closed() && !stop_clients.load()) {
          const std::string id = "c" + std::to_string(c) + "-" + std::to_string(n++);
          HttpResult r;
          if (c == 0 && n % 10 == 0) {
            const std::string evt = "evt_" + id;
            r = conn.request("POST", "/v1/webhooks/stripe/shop", stripe_event(evt),
                             signed_headers(stripe_signature(stripe_event(evt), "whsec_new", now_ms() / 1000)));
            if (r.status == 200) {
              std::lock_guard lock(mutex);
              acked_hooks.insert(evt);
            }
          } else {
            r = conn.request("POST", "/v1/events", pageview("shop", id), kJson);
            if (r.status == 202) {
              std::lock_guard lock(mutex);
              acked_events.insert(id);
            }
          }
          if (r.status != 0) answered++;
        }
      }
    });
  }
  REQUIRE(wait_until(60s, [&] { return answered.load() >= 3000; }, 10ms));
  gw.child->signal(SIGTERM);
  const auto status = gw.child->wait(90s);
  stop_clients = true;
  for (auto& t : clients) t.join();
  INFO(gw.child->log());
  CHECK(status.value_or(-1) == 0);
  CHECK_THAT(gw.child->log(), Catch::Contains("drained and flushed"));
  REQUIRE(acked_events.size() > 1000);

  simdjson::dom::parser parser;
  std::map<std::string, int> web;
  for (const auto& rec : gw.topic("revtrace.web-events.v1")) web[std::string(field(parser.parse(rec.value), "event_id"))]++;
  std::map<std::string, int> hooks;
  for (const auto& rec : gw.topic("revtrace.stripe-events.v1")) hooks[std::string(field(parser.parse(rec.value), "event_id"))]++;
  std::size_t missing = 0;
  for (const auto& id : acked_events) missing += web.count(id) == 0;
  for (const auto& id : acked_hooks) missing += hooks.count(id) == 0;
  CHECK(missing == 0);
  std::size_t duplicates = 0;
  for (const auto& [id, n] : web) duplicates += n > 1;
  for (const auto& [id, n] : hooks) duplicates += n > 1;
  CHECK(duplicates == 0);
  // Only requests whose answer was lost in the shutdown may be in the topic without an ack.
  CHECK(web.size() <= acked_events.size() + 4);
}

// A private broker is stopped before SIGTERM: the pixel events the gateway accepted cannot reach
// Kafka in the 30 s shutdown flush. The gateway must say so and exit non-zero (systemd then
// counts a failure), not log "drained and flushed" and exit 0.
TEST_CASE("gateway: SIGTERM with Kafka unreachable -> records reported as not delivered, exit non-zero",
          "[kafka][gateway][shutdown]") {
  const std::string broker_dir = temp_dir("revtrace-gw-shutdown-broker");
  auto run_script = [&](const std::string& script) {
    return std::system((source_dir() + "/deploy/kafka/" + script + " --dir " + broker_dir + " >> " +
                        broker_dir + ".log 2>&1")
                           .c_str());
  };
  REQUIRE(run_script("start.sh") == 0);
  std::string bootstrap;
  std::ifstream(broker_dir + "/bootstrap") >> bootstrap;
  GatewayUnderTest gw({bootstrap});
  gw.start();
  INFO("logs in " << gw.dir << " and " << broker_dir);
  REQUIRE(http_request(gw.port, "POST", "/v1/events", pageview("shop", "pv-up"), kJson).status == 202);
  // Delivered while the broker is up.
  CHECK(wait_until(30s, [&] { return gw.topic("revtrace.web-events.v1").size() == 1; }, 200ms));

  REQUIRE(run_script("stop.sh") == 0);
  CHECK(wait_until(30s, [&] { return http_request(gw.port, "GET", "/readyz").status == 503; }));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(http_request(gw.port, "POST", "/v1/events", pageview("shop", "pv-down-" + std::to_string(i)), kJson)
                .status == 202);
  }
  const auto t0 = std::chrono::steady_clock::now();
  gw.child->signal(SIGTERM);
  const auto status = gw.child->wait(120s);
  const auto took = std::chrono::steady_clock::now() - t0;
  const std::string log = gw.child->log();
  INFO(log);
  REQUIRE(status.has_value());
  CHECK(*status == 1);
  CHECK(took >= 25s);  // it did try for the flush deadline (30 s) first
  CHECK_THAT(log, Catch::Contains("5 pixel events and redirects NOT delivered to Kafka at shutdown: 5 still "
                                  "queued after the 30 s flush, 0 failed"));
  CHECK_THAT(log, Catch::Contains("shutdown incomplete: 5 records NOT delivered to Kafka"));
  CHECK_THAT(log, Catch::Contains("gateway stopped after a failure; exit status 1"));
  CHECK_THAT(log, !Catch::Contains("drained and flushed"));
}

namespace {

std::string gunzip(const std::string& in) {
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, 15 + 16) == Z_OK);  // gzip wrapper only
  std::string out;
  char buf[16384];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  }
  const bool all_consumed = zs.avail_in == 0;
  inflateEnd(&zs);
  REQUIRE(rc == Z_STREAM_END);
  REQUIRE(all_consumed);  // one gzip member, nothing after it
  return out;
}

}  // namespace

TEST_CASE("gateway: /revtrace.js gzip-compressed when Accept-Encoding allows it, identity otherwise",
          "[kafka][gateway][pixel]") {
  GatewayUnderTest gw({kafka_bootstrap()});
  gw.start();
  INFO("logs in " << gw.dir);
  std::ifstream script(source_dir() + "/ingest/pixel/revtrace.js", std::ios::binary);
  const std::string source(std::istreambuf_iterator<char>(script), {});
  REQUIRE(source.size() > 4096);

  auto get = [&](const std::map<std::string, std::string>& headers) {
    return http_request(gw.port, "GET", "/revtrace.js", {}, headers);
  };
  // Identity: no Accept-Encoding at all.
  auto plain = get({});
  CHECK(plain.status == 200);
  CHECK(plain.body == source);
  CHECK(plain.headers.count("content-encoding") == 0);
  CHECK(plain.headers["content-length"] == std::to_string(source.size()));
  CHECK(plain.headers["vary"] == "Accept-Encoding");
  const std::string identity_etag = plain.headers["etag"];
  REQUIRE(identity_etag.size() == 34);

  // gzip: the bytes of the file after decompression, within the 4 KB budget on the wire.
  auto gz = get({{"Accept-Encoding", "gzip"}});
  CHECK(gz.status == 200);
  CHECK(gz.headers["content-encoding"] == "gzip");
  CHECK(gz.headers["vary"] == "Accept-Encoding");
  CHECK(gz.headers["cache-control"] == "public, max-age=3600");
  CHECK(gz.headers["access-control-allow-origin"] == "*");
  CHECK_THAT(gz.headers["content-type"], Catch::StartsWith("application/javascript"));
  CHECK(gz.headers["content-length"] == std::to_string(gz.body.size()));
  REQUIRE(gz.body.size() >= 2);
  CHECK(static_cast<unsigned char>(gz.body[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(gz.body[1]) == 0x8b);
  CHECK(gunzip(gz.body) == source);  // byte for byte
  CHECK(gz.body.size() <= 4096);
  CHECK(gz.body.size() * 2 < source.size());
  const std::string gzip_etag = gz.headers["etag"];
  CHECK(gzip_etag.size() == 34);
  CHECK(gzip_etag != identity_etag);  // two representations, two strong validators

  // Accept-Encoding as browsers and proxies send it.
  struct Case {
    std::string accept_encoding;
    bool gzip;
  };
  for (const auto& c : std::vector<Case>{{"gzip, deflate, br, zstd", true},
                                         {"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
                                         {"GZIP", true},
                                         {"x-gzip", true},
                                         {"*", true},
                                         {"gzip;q=0.001", true},
                                         {"identity;q=0.5, gzip", true},
                                         {"gzip;q=0", false},
                                         {"gzip; q=0.000, identity", false},
                                         {"GZip;Q=0", false},
                                         {"deflate, br", false},
                                         {"identity", false},
                                         {"*;q=0, identity", false},
                                         {"*, gzip;q=0", false},
                                         {"gzip;q=0.5, identity;q=1", false},
                                         {"*;q=0.5, gzip;q=0.1", false},
                                         {"gzip;q=nonsense", false},
                                         {"", false}}) {
    INFO("Accept-Encoding: " << c.accept_encoding);
    auto r = get({{"Accept-Encoding", c.accept_encoding}});
    CHECK(r.status == 200);
    CHECK(r.headers["vary"] == "Accept-Encoding");
    if (c.gzip) {
      CHECK(r.headers["content-encoding"] == "gzip");
      CHECK(r.headers["etag"] == gzip_etag);
      CHECK(r.body == gz.body);
    } else {
      CHECK(r.headers.count("content-encoding") == 0);
      CHECK(r.headers["etag"] == identity_etag);
      CHECK(r.body == source);
    }
  }

  // 304s as before, each for its own representation.
  auto cached_gz = get({{"Accept-Encoding", "gzip"}, {"If-None-Match", gzip_etag}});
  CHECK(cached_gz.status == 304);
  CHECK(cached_gz.body.empty());
  CHECK(cached_gz.headers["etag"] == gzip_etag);
  CHECK(cached_gz.headers["vary"] == "Accept-Encoding");
  CHECK(cached_gz.headers.count("content-encoding") == 0);
  auto cached_plain = get({{"If-None-Match", identity_etag}});
  CHECK(cached_plain.status == 304);
  CHECK(cached_plain.headers["etag"] == identity_etag);
  // A validator of the other representation does not match the one selected.
  auto other = get({{"Accept-Encoding", "gzip"}, {"If-None-Match", identity_etag}});
  CHECK(other.status == 200);
  CHECK(other.headers["content-encoding"] == "gzip");
  CHECK(get({{"If-None-Match", gzip_etag}}).status == 200);
  // A cache holding both sends both.
  auto both = get({{"Accept-Encoding", "gzip"}, {"If-None-Match", identity_etag + ", W/" + gzip_etag}});
  CHECK(both.status == 304);
  CHECK(both.headers["etag"] == gzip_etag);

  // HEAD: the headers of the GET, no body.
  RawClient head(gw.port);
  head.send("HEAD /revtrace.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
  const auto answer = head.read_until_closed(10s);
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 200"));
  CHECK_THAT(answer, Catch::Contains("Content-Encoding: gzip\r\n"));
  CHECK_THAT(answer, Catch::Contains("Content-Length: " + std::to_string(gz.body.size()) + "\r\n"));
  CHECK_THAT(answer, Catch::EndsWith("\r\n\r\n"));

  gw.child->signal(SIGTERM);
  CHECK(gw.child->wait(60s).value_or(-1) == 0);
}

// The MaxMind path behind a load balancer, with a real database (see ingest/country_test.cpp for
// the file and where its countries were checked): the visitor's address comes from the right-most
// X-Forwarded-For entry, the trusted country header still wins, malformed values mean no country,
// and no record carries an address.
TEST_CASE("gateway: country from X-Forwarded-For through a MaxMind-format database, no IP stored",
          "[kafka][gateway][country]") {
  const std::string db = REVTRACE_COUNTRY_TEST_DB;
  {
    INFO(db << " is missing: run scripts/install-node-deps.sh (npm ci in tests/js)");
    REQUIRE(std::filesystem::is_regular_file(db));
  }
  GatewayOptions options{kafka_bootstrap()};
  options.maxmind_db = db;
  options.client_ip_header = "X-Forwarded-For";
  GatewayUnderTest gw(options);
  gw.start();
  INFO("logs in " << gw.dir);

  const auto post = [&](const std::string& id, std::map<std::string, std::string> headers) {
    headers.emplace("Content-Type", "application/json");
    const auto r = http_request(gw.port, "POST", "/v1/events", pageview("shop", id), headers);
    INFO(id << ": " << r.body);
    CHECK(r.status == 202);
  };
  post("xff-v4", {{"X-Forwarded-For", "8.8.8.8"}});
  post("xff-chain", {{"X-Forwarded-For", "198.51.100.1, 10.1.2.3,193.0.6.139"}});  // right-most wins
  post("xff-v6", {{"X-Forwarded-For", "2a00:1450:4001:82a::200e"}});
  post("xff-v6-port", {{"X-Forwarded-For", "[2001:4860:4860::8888]:51000"}});
  post("header-wins", {{"X-Forwarded-For", "8.8.8.8"}, {"CF-IPCountry", "jp"}});
  post("header-bad", {{"X-Forwarded-For", "80.67.169.12"}, {"CF-IPCountry", "J1"}});  // falls back to the address
  post("xff-garbage", {{"X-Forwarded-For", "not an address"}});
  post("xff-trailing-comma", {{"X-Forwarded-For", "8.8.8.8,"}});
  post("xff-private", {{"X-Forwarded-For", "10.0.0.1"}});
  post("xff-missing", {});
  const auto gif = http_request(gw.port, "GET", "/v1/events.gif?type=pageview&site_id=shop&visitor_id=v-gif&event_id=xff-gif&url=https%3A%2F%2Fshop.example%2F",
                                {}, {{"X-Forwarded-For", "133.242.0.1"}});
  CHECK(gif.status == 200);
  // Two field lines (a proxy that adds its own instead of appending): the last line counts.
  const std::string body = pageview("shop", "xff-two-lines");
  RawClient raw(gw.port);
  REQUIRE(raw.connected());
  raw.send("POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "X-Forwarded-For: 8.8.8.8\r\nX-Forwarded-For: 193.0.6.139\r\nConnection: close\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  CHECK_THAT(raw.read_until_closed(10s), Catch::StartsWith("HTTP/1.1 202"));

  const std::map<std::string, std::string> expected{
      {"xff-v4", "US"},          {"xff-chain", "NL"},        {"xff-v6", "IE"},          {"xff-v6-port", "US"},
      {"header-wins", "JP"},     {"header-bad", "FR"},       {"xff-garbage", ""},       {"xff-trailing-comma", ""},
      {"xff-private", ""},       {"xff-missing", ""},        {"xff-gif", "JP"},         {"xff-two-lines", "NL"}};
  std::vector<TopicRecord> web;
  REQUIRE(wait_until(30s, [&] { return (web = gw.topic("revtrace.web-events.v1")).size() >= expected.size(); }));
  REQUIRE(web.size() == expected.size());
  simdjson::dom::parser parser;
  std::map<std::string, std::string> country_by_id;
  for (const auto& rec : web) {
    simdjson::dom::element doc = parser.parse(rec.value);
    country_by_id[std::string(field(doc, "event_id"))] = std::string(field(doc, "country"));
    // No address (nor a piece of one) is stored, whichever header it came in.
    for (const char* address : {"8.8.8.8", "193.0.6.139", "198.51.100.1", "10.1.2.3", "2a00:1450", "2001:4860",
                                "80.67.169.12", "133.242.0.1", "10.0.0.1", "127.0.0.1", "51000"}) {
      INFO(rec.value);
      CHECK(rec.value.find(address) == std::string::npos);
    }
  }
  CHECK(country_by_id == expected);
  validate_records(gw.dir, "revtrace.web-events.v1", web);
  CHECK(http_request(gw.port, "GET", "/healthz").status == 200);
  gw.child->signal(SIGTERM);
  CHECK(gw.child->wait(60s).value_or(-1) == 0);

  // Without gateway.client_ip_header the header is not trusted: the TCP peer (127.0.0.1 here, in
  // no database) is looked up, so a forged X-Forwarded-For gives no country.
  options.client_ip_header.clear();
  GatewayUnderTest direct(options);
  direct.start();
  INFO("logs in " << direct.dir);
  CHECK(http_request(direct.port, "POST", "/v1/events", pageview("shop", "forged"),
                     {{"Content-Type", "application/json"}, {"X-Forwarded-For", "8.8.8.8"}})
            .status == 202);
  std::vector<TopicRecord> direct_web;
  REQUIRE(wait_until(30s, [&] { return !(direct_web = direct.topic("revtrace.web-events.v1")).empty(); }));
  REQUIRE(direct_web.size() == 1);
  CHECK(direct_web[0].value.find("\"country\"") == std::string::npos);
  direct.child->signal(SIGTERM);
  CHECK(direct.child->wait(60s).value_or(-1) == 0);
}
