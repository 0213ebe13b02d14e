// Issue 8 end to end on a real Kafka broker (labels kafka;stripe):
// - [reconcile_e2e] `revtrace reconcile` against a loopback fake Stripe API serving paginated
//   lists built from /work/shared/stripe-fixtures: a charge whose signed webhook came through the
//   gateway first is not appended again; a checkout session and its charge that only the API
//   shows are appended and counted as one payment (exact amount, net, method, touch); so are a
//   session created before the window and completed in it, and a charge authorised before it and
//   captured in it (their events say when), while one that completed before the window is not;
//   the session's late webhook adds no second payment; a second reconcile appends nothing; a
//   secret key is warned about.
// - [query_routes] the query server's Payment Links routes against stripe-mock: create (201,
//   recorded in revtrace.payment-links.v1), list, 401/403 isolation, 400 naming the parameter,
//   Stripe's refusal surfaced.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "stripe_api/payment_links.hpp"
#include "tests/stripe/fake_stripe.hpp"
#include "tests/support/test_support.hpp"

using namespace revtrace::testing;
using namespace std::chrono_literals;

namespace {

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A Stripe object from the shared fixtures with some fields replaced (values are raw JSON).
std::string fixture_object(const std::string& name, const std::map<std::string, std::string>& set) {
  const std::string text = read_file("/work/shared/stripe-fixtures/objects/" + name + ".json");
  simdjson::dom::parser parser;
  simdjson::dom::object object = parser.parse(text).get_object();
  std::string out = "{";
  std::set<std::string> done;
  for (const auto field : object) {
    const std::string key(field.key);
    if (out.size() > 1) out += ',';
    out += "\"" + key + "\":";
    if (auto it = set.find(key); it != set.end()) {
      out += it->second;
      done.insert(key);
    } else {
      out += simdjson::to_string(field.value);
    }
  }
  for (const auto& [key, value] : set) {
    if (!done.contains(key)) out += ",\"" + key + "\":" + value;
  }
  return out + "}";
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// Serves Stripe list endpoints one object per page (has_more / starting_after), so every listing
// of more than one object is paginated.
FakeResponse serve_lists(const FakeRequest& req,
                         const std::map<std::string, std::vector<std::string>>& lists) {
  const std::string target(req.target());
  const auto q = target.find('?');
  const std::string path = target.substr(0, q);
  std::string after;
  if (q != std::string::npos) {
    const auto at = target.find("starting_after=", q);
    if (at != std::string::npos) {
      after = target.substr(at + 15, target.find('&', at) - (at + 15));
    }
  }
  auto it = lists.find(path);
  if (req.method() != fake_http::verb::get || it == lists.end()) {
    return fake_json(404, R"({"error":{"type":"invalid_request_error","message":"Unrecognized request URL"}})");
  }
  const auto& objects = it->second;
  std::size_t start = 0;
  if (!after.empty()) {
    simdjson::dom::parser parser;
    for (std::size_t i = 0; i < objects.size(); ++i) {
      std::string_view id = parser.parse(objects[i])["id"].get_string();
      if (id == after) start = i + 1;
    }
  }
  std::string body = R"({"object":"list","url":")" + path + R"(","has_more":)" +
                     (start + 1 < objects.size() ? "true" : "false") + R"(,"data":[)";
  if (start < objects.size()) body += objects[start];
  return fake_json(200, body + "]}");
}

// The processor owns all 18 input partitions (3 topics x 6) with no lag, three polls in a row.
bool wait_idle(std::uint16_t port, std::chrono::seconds timeout) {
  int calm = 0;
  return wait_until(timeout, [&] {
    auto [sum, n] = processor_lag(port);
    calm = (sum == 0 && n == 18) ? calm + 1 : 0;
    return calm >= 3;
  }, 500ms);
}

std::vector<TopicRecord> records_of(const std::string& bootstrap, const std::string& topic,
                                    const std::string& site) {
  std::vector<TopicRecord> out;
  for (auto& r : read_topic(bootstrap, topic)) {
    if (r.key == site || r.key.starts_with(site + "/")) out.push_back(std::move(r));
  }
  return out;
}

// The latest (highest generation, revision) value per key; tombstones remove the key.
std::map<std::string, std::string> latest_per_key(const std::vector<TopicRecord>& records) {
  std::map<std::string, std::string> latest;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> best;
  simdjson::dom::parser parser;
  for (const auto& r : records) {
    if (r.value.empty()) {
      latest.erase(r.key);
      best.erase(r.key);
      continue;
    }
    simdjson::dom::element rec = parser.parse(r.value);
    const std::pair<std::int64_t, std::int64_t> at{rec["generation"].get_int64(),
                                                    rec["revision"].get_int64()};
    if (!best.contains(r.key) || at > best[r.key]) {
      best[r.key] = at;
      latest[r.key] = r.value;
    }
  }
  return latest;
}

std::string message_of(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view m;
  if (parser.parse(body).get(doc) || doc["message"].get_string().get(m)) return {};
  return std::string(m);
}

void run_ok(const std::vector<std::string>& argv, const std::string& log) {
  ChildProcess p(argv, {}, log);
  const int status = p.wait(120s).value_or(-1);
  INFO(argv[1] << ": " << p.log());
  REQUIRE(status == 0);
}

}  // namespace

TEST_CASE("reconcile end to end: what only the API shows is appended and counted once, what the "
          "webhook delivered first is not appended, and late webhooks add no second payment",
          "[kafka][stripe][reconcile_e2e]") {
  const std::string bootstrap = kafka_bootstrap();
  const std::string dir = temp_dir("revtrace-reconcile");
  const std::string site = unique("recon");
  const std::string visitor = unique("v");
  const std::string prefix = unique("recon") + ".";
  const std::string tag = unique("x");  // makes the Stripe ids unique per run
  const auto gw_port = free_port();
  const auto metrics_port = free_port();
  const std::int64_t now = now_s();
  const std::int64_t pageview_at = (now - 1200) * 1000;
  const std::int64_t paid_at = now - 600;
  // Payment A: a checkout session and its charge, which only the API shows at first.
  const std::string session_id = "cs_test_" + tag;
  const std::string intent_id = "pi_" + tag;
  const std::string charge_id = "ch_" + tag;
  // Payment B: a charge whose webhook arrives before any reconcile.
  const std::string hook_charge_id = "ch_" + tag + "_hook";
  const std::string hook_intent_id = "pi_" + tag + "_hook";
  const std::string visitor_metadata = R"({"revtrace_visitor_id":")" + visitor + "\"}";
  auto succeeded_charge = [&](const std::string& id, const std::string& intent, int amount,
                              std::int64_t created, const std::string& metadata) {
    return fixture_object("charge", {{"id", quoted(id)},
                                     {"status", quoted("succeeded")},
                                     {"paid", "true"},
                                     {"captured", "true"},
                                     {"amount", std::to_string(amount)},
                                     {"amount_captured", std::to_string(amount)},
                                     {"amount_refunded", "0"},
                                     {"refunded", "false"},
                                     {"currency", quoted("usd")},
                                     {"created", std::to_string(created)},
                                     {"payment_intent", quoted(intent)},
                                     {"metadata", metadata}});
  };
  const std::string hook_charge = succeeded_charge(hook_charge_id, hook_intent_id, 2500,
                                                   paid_at - 300, visitor_metadata);
  // Objects created before the window (`--since now - 1 h`) that changed in it, told by their
  // events (GET /v1/events): payment C, a session created two hours before the window and
  // completed in it, with its charge; payment E, a charge authorised two days before the window
  // and captured in it. Payment D, a session and its charge completed before the window, is
  // listed (the listings reach 24 h and 7 days back) but has no event in the window: not appended.
  const std::int64_t since_s = now - 3600;
  const std::string c_session_id = "cs_test_" + tag + "_c";
  const std::string c_intent_id = "pi_" + tag + "_c";
  const std::string c_charge_id = "ch_" + tag + "_c";
  const std::string e_charge_id = "ch_" + tag + "_e";
  const std::string e_intent_id = "pi_" + tag + "_e";
  const std::int64_t c_created = since_s - 7200;
  const std::int64_t e_created = since_s - 2 * 86400;
  auto completed_session = [&](const std::string& id, const std::string& intent, int amount,
                               std::int64_t created) {
    return fixture_object("checkout.session", {{"id", quoted(id)},
                                               {"status", quoted("complete")},
                                               {"payment_status", quoted("paid")},
                                               {"amount_subtotal", std::to_string(amount)},
                                               {"amount_total", std::to_string(amount)},
                                               {"currency", quoted("usd")},
                                               {"created", std::to_string(created)},
                                               {"expires_at", std::to_string(created + 86400)},
                                               {"payment_intent", quoted(intent)},
                                               {"metadata", visitor_metadata}});
  };
  // A manual capture: the authorisation would have lapsed at capture_before.
  const std::string e_charge = fixture_object(
      "charge", {{"id", quoted(e_charge_id)},
                 {"status", quoted("succeeded")},
                 {"paid", "true"},
                 {"captured", "true"},
                 {"amount", "700"},
                 {"amount_captured", "700"},
                 {"amount_refunded", "0"},
                 {"refunded", "false"},
                 {"currency", quoted("usd")},
                 {"created", std::to_string(e_created)},
                 {"payment_intent", quoted(e_intent_id)},
                 {"payment_method_details",
                  R"({"type":"card","card":{"brand":"visa","capture_before":)" +
                      std::to_string(since_s + 5 * 86400) + "}}"},
                 {"metadata", visitor_metadata}});
  auto event = [](const std::string& id, const std::string& type, std::int64_t created,
                  const std::string& object_id) {
    return R"({"id":")" + id + R"(","object":"event","api_version":"2025-02-24.acacia","type":")" +
           type + R"(","created":)" + std::to_string(created) +
           R"(,"livemode":false,"data":{"object":{"id":")" + object_id + "\"}}}";
  };

  // Stripe as the API shows it: the paid session (page 1), an abandoned one (page 2), C's and D's
  // sessions; the session's charge, B's charge, two declined charges, C's, D's and E's charges
  // (7 pages); a draft invoice; no refunds; the events of the window for C and E.
  const std::map<std::string, std::vector<std::string>> lists{
      {"/v1/events",
       {event("evt_" + tag + "_c", "checkout.session.completed", paid_at + 20, c_session_id),
        event("evt_" + tag + "_e", "charge.captured", paid_at + 40, e_charge_id)}},
      {"/v1/checkout/sessions",
       {fixture_object("checkout.session",
                       {{"id", quoted(session_id)},
                        {"status", quoted("complete")},
                        {"payment_status", quoted("paid")},
                        {"amount_subtotal", "4900"},
                        {"amount_total", "4900"},
                        {"currency", quoted("usd")},
                        {"created", std::to_string(paid_at)},
                        {"payment_intent", quoted(intent_id)},
                        {"metadata", visitor_metadata}}),
        fixture_object("checkout.session", {{"id", quoted(session_id + "_open")},
                                            {"created", std::to_string(paid_at - 60)},
                                            {"payment_intent", quoted(intent_id + "_open")}}),
        completed_session(c_session_id, c_intent_id, 1500, c_created),
        completed_session("cs_test_" + tag + "_d", "pi_" + tag + "_d", 900, since_s - 10800)}},
      {"/v1/charges",
       {succeeded_charge(charge_id, intent_id, 4900, paid_at + 5, "{}"),
        hook_charge,
        fixture_object("charge", {{"id", quoted("ch_" + tag + "_d1")},
                                  {"status", quoted("failed")},
                                  {"paid", "false"},
                                  {"created", std::to_string(paid_at - 120)},
                                  {"payment_intent", quoted(intent_id + "_d")}}),
        fixture_object("charge", {{"id", quoted("ch_" + tag + "_d2")},
                                  {"status", quoted("failed")},
                                  {"paid", "false"},
                                  {"created", std::to_string(paid_at - 180)},
                                  {"payment_intent", quoted(intent_id + "_d")}}),
        // C's charge, made when the session completed (in the window)
        succeeded_charge(c_charge_id, c_intent_id, 1500, paid_at + 20, "{}"),
        // D's charge, captured when made, before the window
        succeeded_charge("ch_" + tag + "_dd", "pi_" + tag + "_d", 900, since_s - 9000, "{}"),
        e_charge}},
      {"/v1/invoices",
       {fixture_object("invoice", {{"id", quoted("in_" + tag)},
                                   {"status", quoted("draft")},
                                   {"created", std::to_string(paid_at)}})}},
      {"/v1/refunds", {}},
  };
  FakeStripe stripe([&](const FakeRequest& req) { return serve_lists(req, lists); });

  auto write_config = [&](const std::string& path, const std::string& api_key) {
    std::ofstream out(path);
    out << "log_level = \"info\"\n[kafka]\nbootstrap = \"" << bootstrap
        << "\"\npartitions = 6\ntopic_prefix = \"" << prefix << "\"\n"
        << "[gateway]\nlisten = \"127.0.0.1:" << gw_port << "\"\nthreads = 2\n"
        << "[processor]\ndata_dir = \"" << dir << "/processor\"\ngroup_id = \"" << unique("proc")
        << "\"\nmetrics_listen = \"127.0.0.1:" << metrics_port << "\"\n"
        << "[[sites]]\nid = \"" << site << "\"\nwebhook_secrets = [\"whsec_recon\"]\n"
        << "allowed_origins = [\"*\"]\nquery_tokens = [\"token-" << site << "\"]\n"
        << "stripe_api_key = \"" << api_key << "\"\nstripe_api_base = \"" << stripe.base_url()
        << "\"\n";
  };
  const std::string config = dir + "/revtrace.toml";
  write_config(config, "rk_test_reconcile");
  const std::string bin = revtrace_binary();
  run_ok({bin, "topics", "create", "--config", config}, dir + "/topics.log");
  ChildProcess gateway({bin, "gateway", "--config", config}, {}, dir + "/gateway.log");
  ChildProcess processor({bin, "processor", "--config", config}, {}, dir + "/processor.log");
  INFO("logs in " << dir);
  REQUIRE(wait_for_http(gw_port, "/healthz", 30s));

  const std::string pageview =
      R"({"type":"pageview","site_id":")" + site + R"(","visitor_id":")" + visitor +
      R"(","session_id":"s1","occurred_at":)" + std::to_string(pageview_at) +
      R"(,"url":"https://shop.example/?utm_source=podcast&utm_medium=audio&utm_campaign=spring","referrer":"","title":"Home"})";
  REQUIRE(http_request(gw_port, "POST", "/v1/events", pageview,
                       {{"Content-Type", "application/json"}})
              .status == 202);
  const std::string web_topic = prefix + "revtrace.web-events.v1";
  const std::string stripe_topic = prefix + "revtrace.stripe-events.v1";
  const std::string revenue_topic = prefix + "revtrace.attributed-revenue.v1";
  REQUIRE(wait_until(30s, [&] { return records_of(bootstrap, web_topic, site).size() == 1; }));

  // A signed webhook through the gateway, answered 200.
  auto webhook = [&](const std::string& event_id, const std::string& type, std::int64_t created,
                     const std::string& object) {
    const std::string payload =
        R"({"id":")" + event_id + R"(","object":"event","api_version":"2025-02-24.acacia","created":)" +
        std::to_string(created) + R"(,"livemode":false,"pending_webhooks":1,"type":")" + type +
        R"(","data":{"object":)" + object + "}}";
    const auto hook = http_request(
        gw_port, "POST", "/v1/webhooks/stripe/" + site, payload,
        {{"Content-Type", "application/json"},
         {"Stripe-Signature", stripe_signature(payload, "whsec_recon", now_s())}});
    INFO("webhook answer: " << hook.body);
    REQUIRE(hook.status == 200);
  };
  // The site's stripe-events records as (source, event type, object id), in topic order per
  // partition (one key: one partition).
  auto stripe_records = [&] {
    std::vector<std::tuple<std::string, std::string, std::string>> out;
    simdjson::dom::parser p, inner;
    for (const auto& r : records_of(bootstrap, stripe_topic, site)) {
      simdjson::dom::element rec = p.parse(r.value);
      const std::string payload{std::string_view(rec["payload"])};
      simdjson::dom::element event = inner.parse(payload);
      out.emplace_back(std::string_view(rec["source"]), std::string_view(rec["event_type"]),
                       std::string_view(event["data"]["object"]["id"]));
    }
    return out;
  };
  using StripeRecords = std::vector<std::tuple<std::string, std::string, std::string>>;
  const std::string since = std::to_string(since_s);
  auto reconcile = [&](const std::string& name, const std::string& config_file,
                       const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{bin, "reconcile", "--config", config_file, "--site", site,
                                  "--since", since};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ChildProcess p(argv, {}, dir + "/" + name + ".log");
    const int status = p.wait(120s).value_or(-1);
    INFO("reconcile: " << p.log());
    REQUIRE(status == 0);
    return p.log();
  };
  // The latest record of each payment (read_committed: what a consumer of the topic sees),
  // once the processor has consumed everything.
  auto payments = [&] {
    REQUIRE(wait_idle(metrics_port, 60s));
    return latest_per_key(records_of(bootstrap, revenue_topic, site));
  };
  simdjson::dom::parser parser;
  auto payment_with_charge = [&](const std::map<std::string, std::string>& latest,
                                 const std::string& charge) -> std::string {
    for (const auto& [key, value] : latest) {
      simdjson::dom::element rec = parser.parse(value);
      std::string_view c;
      if (!rec["stripe"]["charge"].get_string().get(c) && c == charge) return value;
    }
    return {};
  };

  // 1. Payment B's webhook arrives first.
  webhook("evt_" + tag + "_b", "charge.succeeded", paid_at - 299, hook_charge);
  REQUIRE(stripe_records() == StripeRecords{{"webhook", "charge.succeeded", hook_charge_id}});
  REQUIRE(wait_until(90s, [&] { return !records_of(bootstrap, revenue_topic, site).empty(); }, 250ms));
  const auto after_hook_b = payments();
  INFO("processor log:\n" << processor.log());
  REQUIRE(after_hook_b.size() == 1);

  // 2. Reconcile: payment A (session and charge), C (session and charge) and E (charge) are
  // missing and appended; B's charge is the change the webhook delivered, so nothing is appended
  // for it; D changed before the window.
  const auto first = reconcile("reconcile-1", config);
  INFO("first reconcile: " << first);
  CHECK(first.find(R"("changes":6,"already_delivered":1,"missing":5,"appended":5)") !=
        std::string::npos);
  CHECK(first.find(R"("events_complete":true)") != std::string::npos);
  CHECK(first.find("not a restricted key") == std::string::npos);  // an rk_ key: no warning
  // Every listing was paged through to its end.
  // Every listing was paged through to its end, from the widened creation windows; nothing
  // needed retrieving.
  std::size_t event_pages = 0, session_pages = 0, charge_pages = 0, invoice_pages = 0;
  std::vector<std::string> first_pages;
  for (const auto& r : stripe.requests()) {
    const std::string t(r.target());
    CHECK(std::string(r[fake_http::field::authorization]) == "Bearer rk_test_reconcile");
    CHECK(std::string(r["Stripe-Version"]) == "2025-02-24.acacia");
    event_pages += t.starts_with("/v1/events");
    session_pages += t.starts_with("/v1/checkout/sessions");
    charge_pages += t.starts_with("/v1/charges");
    invoice_pages += t.starts_with("/v1/invoices");
    if (t.starts_with("/v1/checkout/sessions") && session_pages == 2) {
      CHECK(t.find("starting_after=" + session_id) != std::string::npos);
    }
    if (t.find("starting_after=") == std::string::npos) first_pages.push_back(t);
  }
  CHECK(event_pages == 2);
  CHECK(session_pages == 4);
  CHECK(charge_pages == 7);
  CHECK(invoice_pages == 1);
  CHECK(first_pages ==
        std::vector<std::string>{
            "/v1/events?created[gte]=" + since +
                "&types[]=checkout.session.completed&types[]=checkout.session.async_payment_succeeded"
                "&types[]=charge.captured&types[]=invoice.paid&limit=100",
            "/v1/refunds?created[gte]=" + since + "&limit=100",
            "/v1/checkout/sessions?created[gte]=" + std::to_string(since_s - 86400) +
                "&status=complete&limit=100",
            "/v1/charges?created[gte]=" + std::to_string(since_s - 7 * 86400) + "&limit=100",
            "/v1/invoices?created[gte]=" + std::to_string(since_s - 62 * 86400) +
                "&status=paid&limit=100"});
  // Oldest first: E's charge (authorised two days before), C's session (two hours before), A's
  // session (created at paid_at), A's charge (5 s later), C's charge (20 s later).
  CHECK(stripe_records() == StripeRecords{{"webhook", "charge.succeeded", hook_charge_id},
                                          {"api", "charge.succeeded", e_charge_id},
                                          {"api", "checkout.session.completed", c_session_id},
                                          {"api", "checkout.session.completed", session_id},
                                          {"api", "charge.succeeded", charge_id},
                                          {"api", "charge.succeeded", c_charge_id}});

  auto check_payments = [&](const std::map<std::string, std::string>& latest) {
    REQUIRE(latest.size() == 4);  // A, B, C and E, each once
    const auto a = payment_with_charge(latest, charge_id);
    const auto b = payment_with_charge(latest, hook_charge_id);
    const auto c = payment_with_charge(latest, c_charge_id);
    const auto e = payment_with_charge(latest, e_charge_id);
    INFO("payments:\n" << a << "\n" << b << "\n" << c << "\n" << e);
    REQUIRE_FALSE(a.empty());
    REQUIRE_FALSE(b.empty());
    REQUIRE_FALSE(c.empty());
    REQUIRE_FALSE(e.empty());
    simdjson::dom::element rec = parser.parse(a);
    CHECK(std::string_view(rec["site_id"]) == site);
    CHECK(int64_t(rec["amount"]) == 4900);
    CHECK(std::string_view(rec["currency"]) == "usd");
    CHECK(int64_t(rec["refunded"]) == 0);
    CHECK(int64_t(rec["net"]) == 4900);
    CHECK(std::string_view(rec["method"]) == "metadata");
    CHECK(int64_t(rec["paid_at"]) == paid_at * 1000);  // the earliest time either object shows
    CHECK(std::string_view(rec["stripe"]["checkout_session"]) == session_id);
    CHECK(std::string_view(rec["stripe"]["payment_intent"]) == intent_id);
    simdjson::dom::array touches = rec["touches"];
    REQUIRE(touches.size() == 1);
    CHECK(std::string_view(touches.at(0)["source"]) == "podcast");
    CHECK(std::string_view(touches.at(0)["medium"]) == "audio");
    CHECK(std::string_view(touches.at(0)["campaign"]) == "spring");
    simdjson::dom::array credits = rec["credits"]["first_touch"];
    REQUIRE(credits.size() == 1);
    CHECK(int64_t(credits.at(0)) == 4900);
    rec = parser.parse(b);
    CHECK(int64_t(rec["amount"]) == 2500);
    CHECK(std::string_view(rec["currency"]) == "usd");
    CHECK(int64_t(rec["net"]) == 2500);
    CHECK(std::string_view(rec["method"]) == "metadata");
    CHECK(rec["stripe"]["checkout_session"].is_null());
    CHECK(std::string_view(rec["stripe"]["payment_intent"]) == hook_intent_id);
    // C: its session and its charge are one payment, dated at the session's creation.
    rec = parser.parse(c);
    CHECK(int64_t(rec["amount"]) == 1500);
    CHECK(std::string_view(rec["currency"]) == "usd");
    CHECK(int64_t(rec["net"]) == 1500);
    CHECK(int64_t(rec["paid_at"]) == c_created * 1000);
    CHECK(std::string_view(rec["stripe"]["checkout_session"]) == c_session_id);
    CHECK(std::string_view(rec["stripe"]["payment_intent"]) == c_intent_id);
    // E: the captured authorisation, dated at the charge.
    rec = parser.parse(e);
    CHECK(int64_t(rec["amount"]) == 700);
    CHECK(std::string_view(rec["currency"]) == "usd");
    CHECK(int64_t(rec["net"]) == 700);
    CHECK(int64_t(rec["paid_at"]) == e_created * 1000);
    CHECK(rec["stripe"]["checkout_session"].is_null());
    CHECK(std::string_view(rec["stripe"]["payment_intent"]) == e_intent_id);
  };
  const auto after_reconcile = payments();
  check_payments(after_reconcile);

  // 3. The webhook of A's session arrives late (dated at the completion, 90 s after the session
  // was created): still one payment A, same amount and net.
  webhook("evt_" + tag + "_a", "checkout.session.completed", paid_at + 90,
          lists.at("/v1/checkout/sessions")[0]);
  REQUIRE(stripe_records().size() == 7);
  const auto after_webhook = payments();
  check_payments(after_webhook);
  const auto revenue_records = records_of(bootstrap, revenue_topic, site).size();

  // 4. A second reconcile finds every change delivered: nothing appended, nothing recounted.
  const auto second = reconcile("reconcile-2", config);
  INFO("second reconcile: " << second);
  CHECK(second.find(R"("changes":6,"already_delivered":6,"missing":0,"appended":0)") !=
        std::string::npos);
  CHECK(stripe_records().size() == 7);
  check_payments(payments());
  CHECK(records_of(bootstrap, revenue_topic, site).size() == revenue_records);

  // 5. With a secret key instead of a restricted one, reconcile says so (and still works).
  const std::string secret_config = dir + "/revtrace-secret-key.toml";
  write_config(secret_config, "sk_test_reconcile");
  const auto warned = reconcile("reconcile-sk", secret_config, {"--dry-run"});
  INFO("reconcile with a secret key: " << warned);
  CHECK(warned.find("stripe_api_key is a secret key (sk_...), not a restricted key (rk_...)") !=
        std::string::npos);
  CHECK(warned.find(R"("already_delivered":6,"missing":0,"appended":0,"dry_run":true)") !=
        std::string::npos);

  gateway.signal(SIGTERM);
  processor.signal(SIGTERM);
  CHECK(gateway.wait(30s) == 0);
  CHECK(processor.wait(30s) == 0);
  std::filesystem::remove_all(dir);
}

namespace {

std::string stripe_mock_url() {
  const char* file = std::getenv("REVTRACE_STRIPE_MOCK_URL_FILE");
  if (file == nullptr) throw std::runtime_error("REVTRACE_STRIPE_MOCK_URL_FILE is not set");
  std::string url;
  std::ifstream in(file);
  std::getline(in, url);
  if (url.empty()) throw std::runtime_error(std::string("stripe-mock is not running: no URL in ") + file);
  return url;
}

std::string header_of(const HttpResult& r, const std::string& name) {
  const auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

// The query API's answer to a create is the topic's record plus the request's idempotency key.
std::string without_idempotency_key(const std::string& body) {
  const auto at = body.rfind(",\"idempotency_key\":\"");
  return at == std::string::npos ? body : body.substr(0, at) + "}";
}

// revtrace_link of a link created for `site` with `idempotency_key` (stripe_api/payment_links.hpp).
std::string link_id_for(const std::string& site, const std::string& idempotency_key) {
  revtrace::stripe_api::PaymentLinkSpec spec;
  spec.site_id = site;
  spec.amount = 5000;
  spec.currency = "usd";
  spec.product = "Coaching call";
  return revtrace::stripe_api::prepare_payment_link(spec, idempotency_key).link_id;
}

int validate_records(const std::string& dir, const std::string& topic,
                     const std::vector<std::string>& values, std::string& output) {
  const std::string source_dir = std::getenv("REVTRACE_SOURCE_DIR");
  const std::string file = dir + "/" + topic + ".ndjson";
  {
    std::ofstream out(file);
    for (const auto& v : values) out << v << "\n";
  }
  const std::string cmd = "node " + source_dir + "/tests/js/validate-records.mjs " + source_dir +
                          "/schemas " + topic + " " + file + " > " + file + ".out 2>&1";
  const int rc = std::system(cmd.c_str());
  output = read_file(file + ".out");
  return rc;
}

}  // namespace

TEST_CASE("query server Payment Links routes against stripe-mock", "[kafka][stripe][query_routes]") {
  const std::string bootstrap = kafka_bootstrap();
  const std::string dir = temp_dir("revtrace-links");
  const std::string a = unique("links-a");
  const std::string b = unique("links-b");
  const std::string c = unique("links-c");  // its Stripe key is refused
  const std::string prefix = unique("links") + ".";
  const std::string d = unique("links-d");  // behind a proxy; no stripe_links_api_key
  const auto port = free_port();
  const std::string mock = stripe_mock_url();
  // Site D's Stripe: stripe-mock behind a proxy that fails (500), passes, or adds a parameter
  // Stripe rejects; it keeps the Idempotency-Key of every POST.
  enum class Mode { fail, pass, reject };
  std::atomic<Mode> mode{Mode::pass};
  std::mutex keys_mu;
  std::vector<std::string> keys_seen;
  FakeStripe proxy([&](const FakeRequest& req) {
    {
      std::lock_guard lock(keys_mu);
      keys_seen.emplace_back(req["Idempotency-Key"]);
    }
    if (mode == Mode::fail) {
      return fake_json(500, R"({"error":{"type":"api_error","message":"An unknown error occurred"}})");
    }
    auto copy = req;
    if (mode == Mode::reject) {
      copy.body() += "&line_items[0][price_data][tax_behavior]=sometimes";
      copy.prepare_payload();
    }
    return forward(copy, mock);
  });
  auto take_keys = [&] {
    std::lock_guard lock(keys_mu);
    return std::exchange(keys_seen, {});
  };
  const std::string config = dir + "/revtrace.toml";
  {
    std::ofstream out(config);
    out << "log_level = \"info\"\n[kafka]\nbootstrap = \"" << bootstrap
        << "\"\npartitions = 6\ntopic_prefix = \"" << prefix << "\"\n"
        << "[query]\nlisten = \"127.0.0.1:" << port << "\"\ndata_dir = \"" << dir
        << "/query\"\ngroup_id = \"" << unique("query") << "\"\n";
    for (const auto& [site, key] : std::vector<std::pair<std::string, std::string>>{
             {a, "sk_test_links"}, {b, "sk_test_links"}, {c, "not-a-key"}}) {
      out << "[[sites]]\nid = \"" << site << "\"\nwebhook_secrets = [\"whsec_x\"]\n"
          << "query_tokens = [\"token-" << site << "\"]\nstripe_links_api_key = \"" << key
          << "\"\nstripe_api_base = \"" << mock << "\"\n";
    }
    out << "[[sites]]\nid = \"" << d << "\"\nwebhook_secrets = [\"whsec_x\"]\n"
        << "query_tokens = [\"token-" << d << "\"]\nstripe_api_key = \"rk_test_read\"\n"
        << "stripe_api_base = \"" << proxy.base_url() << "\"\n";
  }
  const std::string bin = revtrace_binary();
  run_ok({bin, "topics", "create", "--config", config}, dir + "/topics.log");
  ChildProcess query({bin, "query", "--config", config},
                     {{"REVTRACE_STRIPE_BACKOFF_MS", "1"}}, dir + "/query.log");
  INFO("logs in " << dir);
  REQUIRE(wait_for_http(port, "/healthz", 30s));

  const std::string links_topic = prefix + "revtrace.payment-links.v1";
  auto bearer = [](const std::string& site) {
    return std::map<std::string, std::string>{{"Authorization", "Bearer token-" + site},
                                              {"Content-Type", "application/json"}};
  };
  const std::string route = "/v1/sites/" + a + "/payment-links";
  const std::string coaching =
      R"({"amount":5000,"currency":"usd","product":"Coaching call","campaign":"podcast-may",)"
      R"("customer_email":"Jane@Example.com","redirect_url":"https://acme.example/thanks?plan=pro"})";

  // Isolation first: nothing is created without A's token.
  CHECK(http_request(port, "POST", route, coaching, {{"Content-Type", "application/json"}}).status == 401);
  CHECK(http_request(port, "GET", route).status == 401);
  const auto other_post = http_request(port, "POST", route, coaching, bearer(b));
  CHECK(other_post.status == 403);
  CHECK(http_request(port, "GET", route, {}, bearer(b)).status == 403);

  // Bad parameters are named, before Stripe is called.
  const std::vector<std::pair<std::string, std::string>> bad{
      {R"({"amount":5000,"currency":"xyz","product":"P"})", "currency:"},
      {R"({"amount":5000,"currency":"USDX","product":"P"})", "currency:"},
      {R"({"amount":"50.00","currency":"usd","product":"P"})", "amount:"},
      {R"({"amount":50.5,"currency":"usd","product":"P"})", "amount:"},
      {R"({"amount":-5,"currency":"usd","product":"P"})", "amount:"},
      {R"({"amount":100000000,"currency":"usd","product":"P"})", "amount:"},
      {R"({"amount":1235,"currency":"bhd","product":"P"})", "amount:"},
      {R"({"amount":150,"currency":"isk","product":"P"})", "amount:"},
      {R"({"currency":"usd","product":"P"})", "amount:"},
      {R"({"amount":5000,"product":"P"})", "currency:"},
      {R"({"amount":5000,"currency":"usd"})", "product:"},
      {R"({"amount":5000,"currency":"usd","product":"P","colour":"red"})", "colour:"},
      {R"({"amount":5000,"currency":"usd","product":"P","customer_email":"nobody"})", "customer_email:"},
      {R"({"amount":5000,"currency":"usd","product":"P","redirect_url":"/thanks"})", "redirect_url:"},
      {R"({"amount":5000,"currency":"usd","product":"P","interval":"fortnight"})", "interval:"},
  };
  for (const auto& [body, param] : bad) {
    const auto r = http_request(port, "POST", route, body, bearer(a));
    INFO(body << " -> " << r.status << " " << r.body);
    CHECK(r.status == 400);
    CHECK(message_of(r.body).starts_with(param));
  }
  const auto bogus = http_request(port, "POST", route + "?bogus_param=1", coaching, bearer(a));
  CHECK(bogus.status == 400);
  CHECK(message_of(bogus.body).starts_with("bogus_param:"));
  CHECK(http_request(port, "POST", route, "not json", bearer(a)).status == 400);

  // Create: 201 with the record, which is what the topic holds.
  const auto created = http_request(port, "POST", route, coaching,
                                    {{"Authorization", "Bearer token-" + a},
                                     {"Content-Type", "application/json"},
                                     {"Idempotency-Key", "create-" + a}});
  INFO("create: " << created.status << " " << created.body << "\nquery log:\n" << query.log());
  REQUIRE(created.status == 201);
  // The answer names its Idempotency-Key, in the header and in the body.
  CHECK(header_of(created, "idempotency-key") == "create-" + a);
  simdjson::dom::parser parser;
  {
    simdjson::dom::element link = parser.parse(created.body);
    CHECK(std::string_view(link["idempotency_key"]) == "create-" + a);
    CHECK(std::string_view(link["site_id"]) == a);
    CHECK(std::string_view(link["payment_link_id"]).starts_with("plink_"));
    CHECK(std::string_view(link["url"]).starts_with("https://"));
    CHECK(std::string_view(link["revtrace_link"]).starts_with("rtl_"));
    CHECK(int64_t(link["amount"]) == 5000);
    CHECK(std::string_view(link["currency"]) == "usd");
    CHECK(std::string_view(link["product"]) == "Coaching call");
    CHECK(std::string_view(link["campaign"]) == "podcast-may");
    CHECK(link["interval"].is_null());
    CHECK(std::string_view(link["redirect_url"]) ==
          "https://acme.example/thanks?plan=pro&session_id={CHECKOUT_SESSION_ID}");
    CHECK(std::string_view(link["customer_email_hash"]) ==
          revtrace::stripe_api::customer_email_hash("", a, "jane@example.com"));
    CHECK(created.body.find("Jane") == std::string::npos);  // the address itself is not kept
  }
  // A subscription in a zero-decimal currency.
  const auto monthly = http_request(
      port, "POST", route,
      R"({"amount":800,"currency":"JPY","product":"Monthly plan","interval":"month","source":"newsletter"})",
      bearer(a));
  INFO("monthly: " << monthly.body);
  REQUIRE(monthly.status == 201);
  CHECK(monthly.body.find(R"("currency":"jpy")") != std::string::npos);
  CHECK(monthly.body.find(R"("interval":"month")") != std::string::npos);
  // No Idempotency-Key was sent: the generated one is returned, and it is the one the link was
  // made with (it seeds revtrace_link).
  {
    const std::string key = header_of(monthly, "idempotency-key");
    CHECK(key.starts_with("rt-"));
    CHECK(key.size() == 35);
    simdjson::dom::element link = parser.parse(monthly.body);
    CHECK(std::string_view(link["idempotency_key"]) == key);
    CHECK(std::string_view(link["revtrace_link"]) == link_id_for(a, key));
  }

  // Stripe's refusal of C's key is surfaced with Stripe's message, and nothing is recorded.
  const auto refused =
      http_request(port, "POST", "/v1/sites/" + c + "/payment-links", coaching, bearer(c));
  INFO("refused: " << refused.body);
  CHECK(refused.status == 502);
  CHECK(refused.body.find(R"("error":"stripe_authentication")") != std::string::npos);
  CHECK(refused.body.find(R"("status":401)") != std::string::npos);
  CHECK(message_of(refused.body).find("authenticate") != std::string::npos);

  CHECK(header_of(refused, "idempotency-key").starts_with("rt-"));
  CHECK(refused.body.find(R"("idempotency_key":")" + header_of(refused, "idempotency-key") + "\"") !=
        std::string::npos);

  // The topic holds exactly the two created links, keyed by site, each as answered (less the
  // answer's idempotency_key).
  const auto records = read_topic(bootstrap, links_topic);
  REQUIRE(records.size() == 2);
  CHECK(records[0].key == a);
  CHECK(records[1].key == a);
  std::set<std::string> values{records[0].value, records[1].value};
  CHECK(values.count(without_idempotency_key(created.body)) == 1);
  CHECK(values.count(without_idempotency_key(monthly.body)) == 1);
  std::string validator;
  const int rc = validate_records(dir, "revtrace.payment-links.v1",
                                  {records[0].value, records[1].value}, validator);
  INFO("validator: " << validator);
  CHECK(rc == 0);

  // List: A's two links, in creation order; B has none.
  const auto listed = http_request(port, "GET", route, {}, bearer(a));
  INFO("list: " << listed.body);
  REQUIRE(listed.status == 200);
  simdjson::dom::element list = parser.parse(listed.body);
  CHECK(std::string_view(list["site_id"]) == a);
  simdjson::dom::array links = list["payment_links"];
  REQUIRE(links.size() == 2);
  simdjson::dom::parser created_parser;
  CHECK(simdjson::to_string(links.at(0)) ==
        simdjson::to_string(created_parser.parse(without_idempotency_key(created.body)).value()));
  const auto listed_b = http_request(port, "GET", "/v1/sites/" + b + "/payment-links", {}, bearer(b));
  CHECK(listed_b.status == 200);
  CHECK(listed_b.body.find(R"("payment_links":[])") != std::string::npos);
  CHECK(http_request(port, "GET", route + "?limit=5", {}, bearer(a)).status == 400);
  CHECK(http_request(port, "DELETE", route, {}, bearer(a)).status == 405);

  // Site D: Stripe rejects a parameter (stripe-mock's own validation, through the proxy): 422
  // with Stripe's error, and nothing recorded.
  const std::string route_d = "/v1/sites/" + d + "/payment-links";
  const std::string plain = R"({"amount":5000,"currency":"usd","product":"Coaching call"})";
  mode = Mode::reject;
  const auto rejected = http_request(port, "POST", route_d, plain, bearer(d));
  INFO("rejected: " << rejected.body);
  CHECK(rejected.status == 422);
  CHECK(rejected.body.find(R"("error":"stripe_rejected")") != std::string::npos);
  CHECK(rejected.body.find(R"("status":400,"type":"invalid_request_error")") != std::string::npos);
  CHECK(message_of(rejected.body).find("tax_behavior") != std::string::npos);
  CHECK(rejected.body.find(R"("idempotency_key":")" + header_of(rejected, "idempotency-key") + "\"") !=
        std::string::npos);
  CHECK(take_keys() == std::vector<std::string>{header_of(rejected, "idempotency-key")});
  // D has only stripe_api_key: it stands in for stripe_links_api_key, with a warning.
  CHECK(query.log().find("has no stripe_links_api_key") != std::string::npos);

  // Stripe fails (500, retried, then 502): the answer's Idempotency-Key repeats the create safely.
  mode = Mode::fail;
  const auto failed = http_request(port, "POST", route_d, plain, bearer(d));
  INFO("failed: " << failed.body);
  CHECK(failed.status == 502);
  CHECK(failed.body.find(R"("attempts":4)") != std::string::npos);
  const std::string key = header_of(failed, "idempotency-key");
  REQUIRE(key.starts_with("rt-"));
  CHECK(failed.body.find(R"("idempotency_key":")" + key + "\"") != std::string::npos);
  CHECK(take_keys() == std::vector<std::string>(4, key));
  mode = Mode::pass;
  auto with_key = bearer(d);
  with_key["Idempotency-Key"] = key;
  const auto repeated = http_request(port, "POST", route_d, plain, with_key);
  INFO("repeated: " << repeated.body);
  REQUIRE(repeated.status == 201);
  CHECK(take_keys() == std::vector<std::string>{key});
  CHECK(header_of(repeated, "idempotency-key") == key);
  CHECK(repeated.body.find(R"("revtrace_link":")" + link_id_for(d, key) + "\"") != std::string::npos);

  // The same through the CLI: the generated key is printed when the create fails and when it
  // succeeds, and repeating with it sends Stripe the same key.
  auto cli = [&](const std::string& name, const std::vector<std::string>& extra, int expected) {
    std::vector<std::string> argv{bin, "payment-links", "create", "--config", config, "--site", d,
                                  "--amount", "5000", "--currency", "usd", "--product",
                                  "Coaching call"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ChildProcess p(argv, {{"REVTRACE_STRIPE_BACKOFF_MS", "1"}}, dir + "/" + name + ".log");
    const int status = p.wait(120s).value_or(-1);
    INFO(name << ": " << p.log());
    CHECK(status == expected);
    return p.log();
  };
  auto printed_key = [](const std::string& log, const std::string& before) {
    const auto at = log.find(before);
    if (at == std::string::npos) return std::string();
    const auto start = at + before.size();
    return log.substr(start, log.find_first_of(" )\n", start) - start);
  };
  auto printed_record = [](const std::string& log) {
    const auto at = log.find("{\"site_id\"");
    return at == std::string::npos ? std::string() : log.substr(at, log.find('\n', at) - at);
  };
  mode = Mode::fail;
  const auto cli_failed = cli("cli-failed", {}, 1);
  const auto cli_key = printed_key(cli_failed, "to retry safely, run the same command with --idempotency-key ");
  INFO("cli failed: " << cli_failed);
  REQUIRE(cli_key.starts_with("rt-"));
  CHECK(cli_key.size() == 35);
  CHECK(take_keys() == std::vector<std::string>(4, cli_key));
  CHECK(cli_failed.find("has no stripe_links_api_key") != std::string::npos);
  mode = Mode::pass;
  const auto cli_repeated = cli("cli-repeated", {"--idempotency-key", cli_key}, 0);
  CHECK(take_keys() == std::vector<std::string>{cli_key});
  CHECK(printed_key(cli_repeated, "(idempotency key ") == cli_key);
  CHECK(printed_record(cli_repeated).find(R"("revtrace_link":")" + link_id_for(d, cli_key) + "\"") !=
        std::string::npos);
  const auto cli_fresh = cli("cli-fresh", {}, 0);
  const auto fresh_key = printed_key(cli_fresh, "(idempotency key ");
  INFO("cli fresh: " << cli_fresh);
  REQUIRE(fresh_key.starts_with("rt-"));
  CHECK(fresh_key != cli_key);
  CHECK(take_keys() == std::vector<std::string>{fresh_key});
  CHECK(printed_record(cli_fresh).find(R"("revtrace_link":")" + link_id_for(d, fresh_key) + "\"") !=
        std::string::npos);
  // D's records: the API's repeated create and the two CLI creates.
  std::vector<std::string> d_records;
  for (const auto& r : read_topic(bootstrap, links_topic)) {
    if (r.key == d) d_records.push_back(r.value);
  }
  CHECK(d_records == std::vector<std::string>{without_idempotency_key(repeated.body),
                                              printed_record(cli_repeated),
                                              printed_record(cli_fresh)});

  query.signal(SIGTERM);
  CHECK(query.wait(30s) == 0);
  std::filesystem::remove_all(dir);
}
