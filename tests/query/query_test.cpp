// The query side on a real Kafka broker: attributed-revenue records (valid against
// schemas/revtrace.attributed-revenue.v1.schema.json, checked with the ajv validator) are produced
// to the test's own topic, `revtrace query` consumes them, and its HTTP API must answer with
// exactly the hand-computed figures; every route of the router refuses other sites' tokens; bad
// parameters are named; tokens never reach the log; and `revtrace query --rebuild` re-consumes
// from offset 0 and answers byte for byte the same.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "projections/query_service.hpp"
#include "tests/support/test_support.hpp"

using namespace revtrace::testing;
using namespace std::chrono_literals;

namespace {

std::string write_config(const std::string& dir, const std::string& prefix, std::uint16_t port,
                         const std::vector<std::string>& sites) {
  const std::string path = dir + "/revtrace.toml";
  std::ofstream out(path);
  out << "log_level = \"info\"\n"
      << "[kafka]\nbootstrap = \"" << kafka_bootstrap() << "\"\npartitions = 6\n"
      << "topic_prefix = \"" << prefix << "\"\n"
      << "[query]\nlisten = \"127.0.0.1:" << port << "\"\ndata_dir = \"" << dir
      << "/query\"\ngroup_id = \"" << unique("query") << "\"\n";
  for (const auto& site : sites) {
    out << "[[sites]]\nid = \"" << site << "\"\nwebhook_secrets = [\"whsec_x\"]\n"
        << "allowed_origins = [\"*\"]\nquery_tokens = [\"token-" << site << "\"]\n";
  }
  return path;
}

struct Touch {
  std::int64_t at;
  std::string channel;
  std::string source;  // empty = null
  std::string medium;
  std::string campaign;
};

struct Revenue {
  std::string site;
  std::string key;
  int revision = 1;
  bool live = true;
  std::string currency = "usd";
  std::int64_t amount = 0;
  std::int64_t refunded = 0;
  std::int64_t paid_at = 0;
  std::string method = "checkout_redirect";
  std::string customer;
  std::vector<Touch> touches;
  // first_touch, last_touch, last_non_direct, linear, position_based, time_decay
  std::array<std::vector<std::int64_t>, 6> credits;

  [[nodiscard]] std::string json() const {
    auto str = [](const std::string& v) { return v.empty() ? std::string("null") : "\"" + v + "\""; };
    const bool invoice = key.starts_with("in_");
    std::string out = R"({"generation":1,"site_id":")" + site + R"(","payment_key":")" + key +
                      R"(","revision":)" + std::to_string(revision) + R"(,"livemode":)" +
                      (live ? "true" : "false") + R"(,"revenue_type":"cash","amount":)" +
                      std::to_string(amount) + R"(,"currency":")" + currency +
                      R"(","refunded":)" + std::to_string(refunded) + R"(,"net":)" +
                      std::to_string(amount - refunded) + R"(,"paid_at":)" +
                      std::to_string(paid_at) + R"(,"method":")" + method +
                      R"(","stripe":{"checkout_session":null,"payment_intent":)" +
                      str(invoice ? "" : key) + R"(,"charge":null,"invoice":)" +
                      str(invoice ? key : "") + R"(,"subscription":)" +
                      str(invoice ? "sub_query1" : "") + R"(,"customer":)" + str(customer) +
                      R"(,"payment_link":null},"visitor_ids":[],"email_hash":null,"touches":[)";
    for (std::size_t i = 0; i < touches.size(); ++i) {
      const auto& t = touches[i];
      if (i) out += ",";
      out += R"({"at":)" + std::to_string(t.at) + R"(,"channel":")" + t.channel +
             R"(","source":)" + str(t.source) + R"(,"medium":)" + str(t.medium) +
             R"(,"campaign":)" + str(t.campaign) +
             R"(,"term":null,"content":null,"click_id":null,"referrer":null,"landing_path":"/pricing","browser":"Firefox","os":"Linux","device_class":"desktop","country":"NL"})";
    }
    out += R"(],"credits":{)";
    const char* models[] = {"first_touch", "last_touch", "last_non_direct", "linear",
                            "position_based", "time_decay"};
    for (std::size_t m = 0; m < 6; ++m) {
      if (m) out += ",";
      out += "\"" + std::string(models[m]) + "\":[";
      for (std::size_t i = 0; i < credits[m].size(); ++i) {
        out += (i ? "," : "") + std::to_string(credits[m][i]);
      }
      out += "]";
    }
    return out + "}}";
  }
};

constexpr std::int64_t kDay = 86'400'000;
constexpr std::int64_t kJune1 = 1748736000000;  // 2025-06-01T00:00:00Z

std::map<std::string, std::string> bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

std::string message_of(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) return "(not JSON: " + body + ")";
  std::string_view m;
  if (doc["message"].get(m)) return "(no message: " + body + ")";
  return std::string(m);
}

// Validates NDJSON records against schemas/<topic>.schema.json with the ajv validator of tests/js;
// returns its exit status (0 = every record valid) and output.
std::pair<int, std::string> validate_records(const std::string& dir, const std::string& topic,
                                             const std::vector<std::string>& records) {
  const std::string file = dir + "/" + topic + ".ndjson";
  {
    std::ofstream out(file);
    for (const auto& r : records) out << r << "\n";
  }
  const char* src = std::getenv("REVTRACE_SOURCE_DIR");
  if (src == nullptr) return {-1, "REVTRACE_SOURCE_DIR is not set"};
  const std::string cmd = std::string("node ") + src + "/tests/js/validate-records.mjs " + src +
                          "/schemas " + topic + " " + file + " > " + file + ".log 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream log(file + ".log");
  return {rc, std::string(std::istreambuf_iterator<char>(log), {})};
}

bool caught_up(std::uint16_t port) {
  const auto r = http_request(port, "GET", "/healthz");
  return r.status == 200 && r.body.find("\"caught_up\":true") != std::string::npos;
}

}  // namespace

TEST_CASE("query: exact answers, isolation on every route, named bad parameters, rebuild",
          "[kafka][query]") {
  const std::string bootstrap = kafka_bootstrap();
  const std::string dir = temp_dir("revtrace-query");
  const std::string a = unique("qa");
  const std::string b = unique("qb");
  const std::string c = unique("qc");  // values with the read models' key separator in them
  const std::string prefix = unique("query") + ".";
  const auto port = free_port();
  const std::string config = write_config(dir, prefix, port, {a, b, c});
  const std::string bin = revtrace_binary();
  INFO("logs in " << dir);
  {
    ChildProcess create({bin, "topics", "create", "--config", config}, {}, dir + "/topics.log");
    const int status = create.wait(60s).value_or(-1);
    INFO("revtrace topics create: " << create.log());
    REQUIRE(status == 0);
  }

  // The book of site A (site B has one payment that A must never see).
  const Touch paid{kJune1 - 2 * kDay, "Paid Search", "google", "cpc", "brand"};
  const Touch mail{kJune1 - kDay, "Email", "newsletter", "email", "autumn"};
  Revenue p1{a, "pi_query1"};  // 100.00 usd over two touches; 40.00 refunded in revision 2
  p1.amount = 10000;
  p1.paid_at = kJune1 + 10 * 3'600'000;
  p1.customer = "cus_query1";
  p1.touches = {paid, mail};
  p1.credits = {{{10000, 0}, {0, 10000}, {0, 10000}, {5000, 5000}, {5000, 5000}, {3000, 7000}}};
  Revenue p1r2 = p1;
  p1r2.revision = 2;
  p1r2.refunded = 4000;
  Revenue p2 = p1;  // the subscription's renewal a month later inherits the attribution
  p2.key = "in_query2";
  p2.method = "inherited";
  p2.paid_at = kJune1 + 30 * kDay + 3'600'000;  // 2025-07-01
  Revenue p3{a, "pi_query3"};  // 25.00 eur without any touch
  p3.currency = "eur";
  p3.amount = 2500;
  p3.paid_at = kJune1 + 11 * 3'600'000;
  p3.method = "unattributed";
  Revenue p4{a, "pi_query4"};  // test mode
  p4.live = false;
  p4.amount = 777;
  p4.paid_at = kJune1 + 12 * 3'600'000;
  p4.touches = {paid};
  p4.credits = {{{777}, {777}, {777}, {777}, {777}, {777}}};
  Revenue p5{a, "pi_query5"};  // 30.00 usd, organic
  p5.amount = 3000;
  p5.paid_at = kJune1 + kDay + 3'600'000;  // 2025-06-02
  p5.customer = "cus_query2";
  p5.touches = {{kJune1, "Organic Search", "google", "organic", ""}};
  p5.credits = {{{3000}, {3000}, {3000}, {3000}, {3000}, {3000}}};
  Revenue pb{b, "pi_secret_b"};  // site B
  pb.amount = 123456;
  pb.paid_at = kJune1 + 3'600'000;
  pb.touches = {{kJune1 - kDay, "Display", "bsecret", "display", "bcampaign"}};
  pb.credits = {{{123456}, {123456}, {123456}, {123456}, {123456}, {123456}}};
  // Site C: a campaign with \u001f (the read-model key separator) and a source with \u001e (its
  // escape byte) in them, next to a campaign that is the separator's left half.
  Revenue pc1{c, "pi_ctl1"};
  pc1.amount = 4000;
  pc1.paid_at = kJune1 + 5 * 3'600'000;
  pc1.customer = "cus_ctl1";
  pc1.touches = {{kJune1 - kDay, "Paid Social", "face\\u001ebook", "paid_social", "spring\\u001fsale"}};
  pc1.credits = {{{4000}, {4000}, {4000}, {4000}, {4000}, {4000}}};
  Revenue pc2 = pc1;
  pc2.key = "pi_ctl2";
  pc2.amount = 1000;
  pc2.customer = "cus_ctl2";
  pc2.touches[0].campaign = "spring";
  pc2.credits = {{{1000}, {1000}, {1000}, {1000}, {1000}, {1000}}};
  const std::vector<Revenue> records{p1, p3, p1r2, p4, p5, pb, p2, pc1, pc2};

  // The records honour the public contract (independent validator: ajv).
  {
    std::vector<std::string> lines;
    for (const auto& r : records) lines.push_back(r.json());
    const auto [rc, out] = validate_records(dir, "revtrace.attributed-revenue.v1", lines);
    INFO("validator: " << out);
    REQUIRE(rc == 0);
  }
  std::vector<std::pair<std::string, std::string>> kv;
  for (const auto& r : records) kv.emplace_back(r.site + "/" + r.key, r.json());
  const std::string topic = prefix + "revtrace.attributed-revenue.v1";
  produce(bootstrap, topic, kv);

  auto query = std::make_unique<ChildProcess>(
      std::vector<std::string>{bin, "query", "--config", config}, std::map<std::string, std::string>{},
      dir + "/query.log");
  REQUIRE(wait_for_http(port, "/healthz", 30s));
  REQUIRE(wait_until(60s, [&] { return caught_up(port); }, 100ms));
  INFO("query log:\n" << query->log());
  const auto ta = bearer("token-" + a);
  const auto tb = bearer("token-" + b);
  const std::string base = "/v1/sites/" + a;
  auto get = [&](const std::string& target) { return http_request(port, "GET", target, {}, ta); };

  SECTION("exact answers") {
    auto r = get(base + "/revenue?model=linear&group_by=channel");
    REQUIRE(r.status == 200);
    // linear: p1 5000/5000 of 10000, net 6000 -> 3000/3000; the renewal p2 5000/5000 net 5000 each
    CHECK(r.body == R"({"site_id":")" + a +
                        R"(","model":"linear","group_by":"channel","livemode":true,"from":null,"to":null,"rows":[)"
                        R"({"key":"Email","currency":"usd","revenue":10000,"net":8000,"payments":2},)"
                        R"({"key":"Paid Search","currency":"usd","revenue":10000,"net":8000,"payments":2},)"
                        R"({"key":"Organic Search","currency":"usd","revenue":3000,"net":3000,"payments":1},)"
                        R"J({"key":"(unattributed)","currency":"eur","revenue":2500,"net":2500,"payments":1}]})J");
    r = get(base + "/revenue?model=time_decay&group_by=source&currency=usd&from=2025-06-01&to=2025-06-30");
    REQUIRE(r.status == 200);
    // p1 only (the renewal is in July): google 3000 (net 1800), newsletter 7000 (net 4200); p5 3000
    CHECK(r.body.find(R"("rows":[{"key":"newsletter","currency":"usd","revenue":7000,"net":4200,"payments":1},)"
                      R"({"key":"google","currency":"usd","revenue":6000,"net":4800,"payments":2}])") !=
          std::string::npos);
    r = get(base + "/revenue?group_by=method&livemode=false");
    CHECK(r.body.find(R"("rows":[{"key":"checkout_redirect","currency":"usd","revenue":777,"net":777,"payments":1}])") !=
          std::string::npos);
    r = get(base + "/revenue?model=first_touch&group_by=campaign&filter.channel=Paid%20Search");
    CHECK(r.body.find(R"("rows":[{"key":"brand","currency":"usd","revenue":20000,"net":16000,"payments":2}])") !=
          std::string::npos);
    r = get(base + "/timeseries?model=linear");
    REQUIRE(r.status == 200);
    CHECK(r.body.find(R"("rows":[{"key":"2025-06-01","currency":"eur","revenue":2500,"net":2500,"payments":1},)"
                      R"({"key":"2025-06-01","currency":"usd","revenue":10000,"net":6000,"payments":1},)"
                      R"({"key":"2025-06-02","currency":"usd","revenue":3000,"net":3000,"payments":1},)"
                      R"({"key":"2025-07-01","currency":"usd","revenue":10000,"net":10000,"payments":1}])") !=
          std::string::npos);
    r = get(base + "/revenue?model=linear&group_by=channel&format=csv");
    REQUIRE(r.status == 200);
    CHECK(r.headers["content-type"].starts_with("text/csv"));
    CHECK(r.body ==
          "channel,currency,revenue,net,payments\r\nEmail,usd,10000,8000,2\r\n"
          "Paid Search,usd,10000,8000,2\r\nOrganic Search,usd,3000,3000,1\r\n"
          "(unattributed),eur,2500,2500,1\r\n");

    // payments, newest first, two per page
    r = get(base + "/payments?limit=2");
    REQUIRE(r.status == 200);
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(r.body);
    simdjson::dom::array list = doc["payments"];
    REQUIRE(list.size() == 2);
    CHECK(std::string_view(list.at(0)["payment_key"]) == "in_query2");
    CHECK(std::string_view(list.at(1)["payment_key"]) == "pi_query5");
    const std::string cursor{std::string_view(doc["next_cursor"])};
    r = get(base + "/payments?limit=2&cursor=" + cursor);
    REQUIRE(r.status == 200);
    doc = parser.parse(r.body);
    list = doc["payments"];
    REQUIRE(list.size() == 2);
    CHECK(std::string_view(list.at(0)["payment_key"]) == "pi_query3");
    CHECK(std::string_view(list.at(1)["payment_key"]) == "pi_query1");
    CHECK(std::int64_t(list.at(1)["revision"]) == 2);
    CHECK(doc["next_cursor"].is_null());

    // payment detail: the newest revision with its touches and credits, as produced
    r = get(base + "/payments/pi_query1");
    REQUIRE(r.status == 200);
    CHECK(r.body == p1r2.json());

    // ad spend through the API, then ROAS per campaign
    r = http_request(port, "PUT", base + "/ad-spend",
                     R"({"entries":[{"day":"2025-06-01","channel":"Paid Search","source":"google","campaign":"brand","amount":5000,"currency":"usd"}]})",
                     {{"Authorization", "Bearer token-" + a}, {"Content-Type", "application/json"}});
    REQUIRE(r.status == 200);
    CHECK(r.body == R"({"accepted":1})");
    HttpResult roas;
    REQUIRE(wait_until(30s, [&] {
      roas = get(base + "/roas?model=linear&currency=usd");
      return roas.body.find("\"spend\":5000") != std::string::npos;
    }, 100ms));
    // brand: p1 5000 + renewal 5000 of linear credit, one paying customer
    CHECK(roas.body.find(R"("rows":[{"key":"brand","currency":"usd","spend":5000,"revenue":10000,"net":8000,"payments":2,"customers":1,"roas":2.0000,"cost_per_customer":5000.0000},)") !=
          std::string::npos);
    CHECK(roas.body.find(R"({"key":"autumn","currency":"usd","spend":0,"revenue":10000,"net":8000,"payments":2,"customers":1,"roas":null,"cost_per_customer":0.0000})") !=
          std::string::npos);

    // ad spend from an ad platform's CSV export (`revtrace ad-spend import`)
    {
      std::ofstream csv(dir + "/spend.csv");
      csv << "day,channel,source,campaign,amount,currency\r\n"
          << "2025-06-01,Email,newsletter,autumn,2500,usd\r\n";
    }
    ChildProcess import({bin, "ad-spend", "import", "--site", a, "--file", dir + "/spend.csv",
                         "--config", config},
                        {}, dir + "/import.log");
    const int status = import.wait(60s).value_or(-1);
    INFO("import: " << import.log());
    REQUIRE(status == 0);
    CHECK(import.log().find("imported 1 entries") != std::string::npos);
    REQUIRE(wait_until(30s, [&] {
      roas = get(base + "/roas?model=linear&currency=usd&group_by=campaign");
      return roas.body.find(R"({"key":"autumn","currency":"usd","spend":2500,"revenue":10000,"net":8000,"payments":2,"customers":1,"roas":4.0000,"cost_per_customer":2500.0000})") !=
             std::string::npos;
    }, 100ms));
    r = get(base + "/roas?model=linear&currency=usd&group_by=channel&format=csv");
    CHECK(r.body ==
          "channel,currency,spend,revenue,net,payments,customers,roas,cost_per_customer\r\n"
          "Paid Search,usd,5000,10000,8000,2,1,2.0000,5000.0000\r\n"
          "Email,usd,2500,10000,8000,2,1,4.0000,2500.0000\r\n"
          "Organic Search,usd,0,3000,3000,1,1,null,0.0000\r\n");

    // Spend is live money: test-mode ROAS divides only by spend explicitly marked as test money,
    // and that entry never replaces the live one of the same day and campaign.
    r = http_request(port, "PUT", base + "/ad-spend",
                     R"({"entries":[{"day":"2025-06-01","channel":"Paid Search","source":"google","campaign":"brand","amount":300,"currency":"usd","livemode":false}]})",
                     {{"Authorization", "Bearer token-" + a}, {"Content-Type", "application/json"}});
    REQUIRE(r.status == 200);
    const std::string test_roas =
        R"({"site_id":")" + a +
        R"(","model":"linear","group_by":"campaign","livemode":false,"from":null,"to":null,"rows":[)"
        R"({"key":"brand","currency":"usd","spend":300,"revenue":777,"net":777,"payments":1,"customers":1,"roas":2.5900,"cost_per_customer":300.0000}]})";
    REQUIRE(wait_until(30s, [&] {
      roas = get(base + "/roas?model=linear&currency=usd&livemode=false");
      return roas.body == test_roas;
    }, 100ms));
    r = get(base + "/roas?model=linear&currency=usd&group_by=channel&format=csv");
    CHECK(r.body ==
          "channel,currency,spend,revenue,net,payments,customers,roas,cost_per_customer\r\n"
          "Paid Search,usd,5000,10000,8000,2,1,2.0000,5000.0000\r\n"
          "Email,usd,2500,10000,8000,2,1,4.0000,2500.0000\r\n"
          "Organic Search,usd,0,3000,3000,1,1,null,0.0000\r\n");
    // A filter on a key spend carries restricts the spend as well: the Email channel's touches
    // (autumn) against the Email channel's spend; brand's Paid Search spend is not in it.
    r = get(base + "/roas?model=linear&currency=usd&group_by=campaign&filter.channel=Email");
    CHECK(r.body ==
          R"({"site_id":")" + a +
          R"(","model":"linear","group_by":"campaign","livemode":true,"from":null,"to":null,"rows":[)"
          R"({"key":"autumn","currency":"usd","spend":2500,"revenue":10000,"net":8000,"payments":2,"customers":1,"roas":4.0000,"cost_per_customer":2500.0000}]})");
    r = get(base + "/roas?model=linear&currency=usd&group_by=channel&filter.source=google");
    CHECK(r.body ==
          R"({"site_id":")" + a +
          R"(","model":"linear","group_by":"channel","livemode":true,"from":null,"to":null,"rows":[)"
          R"({"key":"Paid Search","currency":"usd","spend":5000,"revenue":10000,"net":8000,"payments":2,"customers":1,"roas":2.0000,"cost_per_customer":5000.0000},)"
          R"({"key":"Organic Search","currency":"usd","spend":0,"revenue":3000,"net":3000,"payments":1,"customers":1,"roas":null,"cost_per_customer":0.0000}]})");

    // Site C: values holding the key separator (\u001f) or its escape byte (\u001e) stay
    // distinct, intact rows, on the revenue and the spend side alike.
    const auto tc = bearer("token-" + c);
    const std::string cbase = "/v1/sites/" + c;
    auto getc = [&](const std::string& target) { return http_request(port, "GET", target, {}, tc); };
    const std::string chead = R"({"site_id":")" + c + R"(","model":"linear","group_by":)";
    r = getc(cbase + "/revenue?model=linear&group_by=campaign");
    CHECK(r.body == chead + R"("campaign","livemode":true,"from":null,"to":null,"rows":[)"
                            R"({"key":"spring\u001fsale","currency":"usd","revenue":4000,"net":4000,"payments":1},)"
                            R"({"key":"spring","currency":"usd","revenue":1000,"net":1000,"payments":1}]})");
    r = getc(cbase + "/revenue?model=linear&group_by=source");
    CHECK(r.body == chead + R"("source","livemode":true,"from":null,"to":null,"rows":[)"
                            R"({"key":"face\u001ebook","currency":"usd","revenue":5000,"net":5000,"payments":2}]})");
    r = getc(cbase + "/revenue?model=linear&group_by=campaign&filter.campaign=spring%1Fsale");
    CHECK(r.body == chead + R"("campaign","livemode":true,"from":null,"to":null,"rows":[)"
                            R"({"key":"spring\u001fsale","currency":"usd","revenue":4000,"net":4000,"payments":1}]})");
    r = http_request(port, "PUT", cbase + "/ad-spend",
                     R"([{"day":"2025-06-01","channel":"Paid Social","source":"face\u001ebook","campaign":"spring\u001fsale","amount":2000,"currency":"usd"}])",
                     {{"Authorization", "Bearer token-" + c}, {"Content-Type", "application/json"}});
    REQUIRE(r.status == 200);
    const std::string c_roas =
        chead + R"("campaign","livemode":true,"from":null,"to":null,"rows":[)"
                R"({"key":"spring\u001fsale","currency":"usd","spend":2000,"revenue":4000,"net":4000,"payments":1,"customers":1,"roas":2.0000,"cost_per_customer":2000.0000},)"
                R"({"key":"spring","currency":"usd","spend":0,"revenue":1000,"net":1000,"payments":1,"customers":1,"roas":null,"cost_per_customer":0.0000}]})";
    REQUIRE(wait_until(30s, [&] {
      roas = getc(cbase + "/roas?model=linear");
      return roas.body == c_roas;
    }, 100ms));
    r = getc(cbase + "/roas?model=linear&group_by=source");
    CHECK(r.body == chead + R"("source","livemode":true,"from":null,"to":null,"rows":[)"
                            R"({"key":"face\u001ebook","currency":"usd","spend":2000,"revenue":5000,"net":5000,"payments":2,"customers":2,"roas":2.5000,"cost_per_customer":1000.0000}]})");
    r = getc(cbase + "/payments");
    REQUIRE(r.status == 200);
    CHECK(r.body.find(R"("payment_key":"pi_ctl2")") != std::string::npos);
    CHECK(r.body.find(R"("payment_key":"pi_ctl1")") != std::string::npos);

    // what they all wrote to revtrace.ad-spend.v1 honours its schema
    std::vector<std::string> spend;
    for (const auto& rec : read_topic(bootstrap, prefix + "revtrace.ad-spend.v1")) spend.push_back(rec.value);
    CHECK(spend.size() == 4);
    const auto [rc, out] = validate_records(dir, "revtrace.ad-spend.v1", spend);
    INFO("validator: " << out);
    CHECK(rc == 0);
  }

  SECTION("site isolation through every route of the router") {
    const auto routes = revtrace::projections::QueryService::site_routes();
    REQUIRE(routes.size() >= 6);
    std::set<std::string> seen;
    for (const auto& route : routes) {
      std::string path = route.path;
      if (const auto brace = path.find('{'); brace != std::string::npos) {
        path = path.substr(0, brace) + "pi_query1";
      }
      const std::string body = route.method == "GET" ? "" : "{}";
      INFO(route.method << " " << route.path);
      seen.insert(route.method + " " + route.path);
      const auto none = http_request(port, route.method, base + path, body);
      CHECK(none.status == 401);
      const auto bogus = http_request(port, route.method, base + path, body, bearer("token-nope"));
      CHECK(bogus.status == 401);
      const auto other = http_request(port, route.method, base + path, body, tb);
      CHECK(other.status == 403);
      CHECK(other.body.find("pi_query") == std::string::npos);
      // B's own token on B's site reaches the route but finds none of A's data
      const auto own_b = http_request(port, route.method, "/v1/sites/" + b + path, body, tb);
      CHECK(own_b.status != 401);
      CHECK(own_b.status != 403);
      CHECK(own_b.body.find("pi_query") == std::string::npos);
      CHECK(own_b.body.find("\"Email\"") == std::string::npos);
      // and A's token reaches every route of A (a bad parameter is named, not ignored)
      const auto own = http_request(port, route.method, base + path + "?bogus_param=1", body, ta);
      CHECK(own.status == 400);
      CHECK(message_of(own.body).starts_with("bogus_param:"));
    }
    CHECK(seen.count("GET /revenue") == 1);
    CHECK(seen.count("PUT /ad-spend") == 1);
    // A's token cannot reach B's payment through A's site, nor B's site at all
    CHECK(get(base + "/payments/pi_secret_b").status == 404);
    CHECK(get("/v1/sites/" + b + "/payments/pi_secret_b").status == 403);
    CHECK(get("/v1/sites/" + b + "/revenue").status == 403);
    // an unknown route under a site needs the token too, and reveals nothing without it
    CHECK(http_request(port, "GET", base + "/nothing-here").status == 401);
    CHECK(get(base + "/nothing-here").status == 404);
    CHECK(http_request(port, "DELETE", base + "/revenue", {}, ta).status == 405);
    // the dashboard itself is public (it holds no data)
    CHECK(http_request(port, "GET", "/").status == 200);
  }

  SECTION("every bad parameter gets a 400 naming it") {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"/revenue?model=newest", "model:"},
        {"/revenue?group_by=colour", "group_by:"},
        {"/revenue?livemode=yes", "livemode:"},
        {"/revenue?currency=USD", "currency:"},
        {"/revenue?from=2025-13-01", "from:"},
        {"/revenue?to=yesterday", "to:"},
        {"/revenue?from=2025-06-02&to=2025-06-01", "from:"},
        {"/revenue?filter.colour=red", "filter.colour:"},
        {"/revenue?format=xml", "format:"},
        {"/timeseries?model=x", "model:"},
        {"/timeseries?format=pdf", "format:"},
        {"/roas?group_by=medium", "group_by:"},
        {"/roas?livemode=1", "livemode:"},
        {"/roas?format=xml", "format:"},
        {"/payments?limit=0", "limit:"},
        {"/payments?limit=501", "limit:"},
        {"/payments?limit=ten", "limit:"},
        {"/payments?cursor=abc", "cursor:"},
        {"/payments/pi_query1?expand=touches", "expand:"},
        // ad spend has no country, device, medium or evidence method to divide by
        {"/roas?filter.country=NL", "filter.country: ad spend has no country"},
        {"/roas?filter.device_class=desktop", "filter.device_class:"},
        {"/roas?filter.medium=cpc", "filter.medium:"},
        {"/roas?filter.method=inherited", "filter.method:"},
        // a repeated parameter is refused, not last-wins
        {"/revenue?model=linear&model=first_touch", "model: given more than once"},
        {"/revenue?model=linear&%6Dodel=linear", "model: given more than once"},
        {"/revenue?livemode=true&livemode=false", "livemode:"},
        {"/revenue?currency=usd&currency=eur", "currency:"},
        {"/revenue?filter.channel=Email&filter.channel=Email", "filter.channel:"},
        {"/revenue?format=csv&format=csv", "format:"},
        {"/timeseries?from=2025-06-01&from=2025-06-02", "from:"},
        {"/timeseries?to=2025-06-01&to=2025-06-01", "to:"},
        {"/roas?group_by=campaign&group_by=channel", "group_by:"},
        {"/payments?limit=2&limit=2", "limit:"},
        {"/payments?cursor=a&cursor=b", "cursor:"},
    };
    for (const auto& [target, name] : cases) {
      const auto r = get(base + target);
      INFO(target << " -> " << r.status << " " << r.body);
      CHECK(r.status == 400);
      CHECK(message_of(r.body).starts_with(name));
    }
    const auto r = http_request(port, "PUT", base + "/ad-spend",
                                R"([{"day":"2025-06-01","channel":"Email","amount":-5,"currency":"usd"}])",
                                ta);
    CHECK(r.status == 400);
    CHECK(message_of(r.body).find("amount") != std::string::npos);
  }

  SECTION("tokens never reach the log") {
    (void)get(base + "/revenue");
    (void)http_request(port, "GET", base + "/revenue", {}, tb);
    (void)http_request(port, "GET", base + "/revenue", {}, bearer("token-guess-123"));
    query->signal(SIGTERM);
    REQUIRE(query->wait(30s) == 0);
    const auto log = query->log();
    CHECK(log.find("token-" + a) == std::string::npos);
    CHECK(log.find("token-" + b) == std::string::npos);
    CHECK(log.find("token-guess-123") == std::string::npos);
  }

  SECTION("a restart resumes; --rebuild re-consumes from offset 0 with identical answers") {
    const std::vector<std::string> dims{"channel", "source", "medium", "campaign", "referrer",
                                        "landing_path", "country", "browser", "device_class",
                                        "method", "all"};
    const std::vector<std::string> models{"first_touch", "last_touch", "last_non_direct",
                                          "linear", "position_based", "time_decay"};
    auto snapshot = [&] {
      std::vector<std::string> out;
      for (const auto& model : models) {
        for (const char* live : {"true", "false"}) {
          for (const auto& dim : dims) {
            out.push_back(get(base + "/revenue?model=" + model + "&group_by=" + dim + "&livemode=" + live).body);
          }
          out.push_back(get(base + "/timeseries?model=" + model + "&livemode=" + live).body);
          out.push_back(get(base + "/roas?model=" + model + "&livemode=" + live).body);
          out.push_back(get(base + "/payments?model=" + model + "&livemode=" + live).body);
        }
      }
      for (const auto& r : records) {
        if (r.site == a) out.push_back(get(base + "/payments/" + r.key).body);
      }
      return out;
    };
    const auto before = snapshot();
    CHECK(before.size() == 6 * 2 * 14 + 6);
    query->signal(SIGTERM);
    REQUIRE(query->wait(30s) == 0);

    // A restart resumes from the positions stored with the read models: nothing re-applied.
    query = std::make_unique<ChildProcess>(
        std::vector<std::string>{bin, "query", "--config", config},
        std::map<std::string, std::string>{}, dir + "/query-restart.log");
    REQUIRE(wait_until(60s, [&] { return caught_up(port); }, 100ms));
    CHECK(query->log().find("caught up (0 attributed-revenue records applied") != std::string::npos);
    CHECK(snapshot() == before);
    query->signal(SIGTERM);
    REQUIRE(query->wait(30s) == 0);

    // --rebuild drops the read models and re-consumes every record of the topic.
    query = std::make_unique<ChildProcess>(
        std::vector<std::string>{bin, "query", "--rebuild", "--config", config},
        std::map<std::string, std::string>{}, dir + "/query-rebuild.log");
    REQUIRE(wait_until(60s, [&] { return caught_up(port); }, 100ms));
    INFO("rebuild log:\n" << query->log());
    CHECK(query->log().find("dropped the read models") != std::string::npos);
    CHECK(query->log().find("caught up (" + std::to_string(records.size()) +
                            " attributed-revenue records applied") != std::string::npos);
    const auto after = snapshot();
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < before.size(); ++i) {
      INFO("answer " << i);
      CHECK(after[i] == before[i]);
    }
  }

  if (query->running()) {
    query->signal(SIGTERM);
    CHECK(query->wait(30s) == 0);
  }
  std::filesystem::remove_all(dir);
}
