#include "projections/read_model.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

using revtrace::projections::BreakdownQuery;
using revtrace::projections::BreakdownRow;
using revtrace::projections::ReadModels;

namespace {

std::string temp_dir() {
  static int n = 0;
  auto dir = std::filesystem::temp_directory_path() /
             ("revtrace-rm-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  std::filesystem::remove_all(dir);
  return dir.string();
}

// paid_at 2026-10-01T12:00:00Z = 1790856000000
std::string record(const std::string& payment, int revision, std::int64_t amount,
                   std::int64_t refunded, const std::string& first_source,
                   const std::string& second_source, std::int64_t c1, std::int64_t c2,
                   std::int64_t paid_at = 1790856000000, const std::string& method = "metadata") {
  auto touch = [](const std::string& source, const std::string& channel) {
    return R"({"at":1790000000000,"channel":")" + channel + R"(","source":")" + source +
           R"(","medium":null,"campaign":"c-)" + source +
           R"(","term":null,"content":null,"click_id":null,"referrer":null,"landing_path":"/","browser":"Chrome","os":"macOS","device_class":"desktop","country":"US"})";
  };
  const std::string credits = "[" + std::to_string(c1) + "," + std::to_string(c2) + "]";
  return R"({"site_id":"s1","payment_key":")" + payment + R"(","revision":)" +
         std::to_string(revision) + R"(,"livemode":true,"revenue_type":"cash","amount":)" +
         std::to_string(amount) + R"(,"currency":"usd","refunded":)" + std::to_string(refunded) +
         R"(,"net":)" + std::to_string(amount - refunded) + R"(,"paid_at":)" +
         std::to_string(paid_at) + R"(,"method":")" + method +
         R"(","stripe":{},"visitor_ids":[],"email_hash":null,"touches":[)" +
         touch(first_source, "Email") + "," + touch(second_source, "Organic Search") +
         R"(],"credits":{"first_touch":)" + credits + R"(,"last_touch":)" + credits +
         R"(,"last_non_direct":)" + credits + R"(,"linear":)" + credits + R"(,"position_based":)" +
         credits + R"(,"time_decay":)" + credits + "}}";
}

std::string unattributed(const std::string& payment, std::int64_t amount) {
  return R"({"site_id":"s1","payment_key":")" + payment +
         R"(","revision":1,"livemode":true,"revenue_type":"cash","amount":)" +
         std::to_string(amount) + R"(,"currency":"usd","refunded":0,"net":)" +
         std::to_string(amount) +
         R"(,"paid_at":1790856000000,"method":"unattributed","stripe":{},"visitor_ids":[],"email_hash":null,"touches":[],"credits":{"first_touch":[],"last_touch":[],"last_non_direct":[],"linear":[],"position_based":[],"time_decay":[]}})";
}

std::map<std::string, BreakdownRow> by_key(const std::vector<BreakdownRow>& rows) {
  std::map<std::string, BreakdownRow> m;
  for (const auto& r : rows) m[r.key] = r;
  return m;
}

void apply_all(ReadModels& m, const std::vector<std::string>& recs) {
  for (const auto& r : recs) {
    std::string err;
    REQUIRE(m.apply(r, err));
  }
}

}  // namespace

TEST_CASE("read models: revisions retract the previous one; refunds reduce net", "[projections]") {
  ReadModels m(temp_dir());
  apply_all(m, {record("pi_1", 1, 1000, 0, "google", "newsletter", 1000, 0),
                // a later revision moves the credit and refunds 300
                record("pi_1", 2, 1000, 300, "google", "newsletter", 400, 600),
                // an older revision arriving late changes nothing
                record("pi_1", 1, 1000, 0, "google", "newsletter", 1000, 0),
                record("pi_2", 1, 7, 0, "google", "bing", 3, 4), unattributed("pi_3", 500)});
  BreakdownQuery q;
  q.site = "s1";
  q.model = "first_touch";
  q.group_by = "source";
  auto rows = by_key(m.breakdown(q));
  CHECK(rows["google"].revenue == 403);
  CHECK(rows["google"].net == 3 + 280);  // 400 * 700/1000 = 280
  CHECK(rows["google"].payments == 2);
  CHECK(rows["newsletter"].revenue == 600);
  CHECK(rows["newsletter"].net == 420);
  CHECK(rows["newsletter"].payments == 1);
  CHECK(rows["bing"].revenue == 4);
  CHECK(rows["(unattributed)"].revenue == 500);
  q.group_by = "all";
  rows = by_key(m.breakdown(q));
  CHECK(rows["all"].revenue == 1507);
  CHECK(rows["all"].net == 1207);
  CHECK(rows["all"].payments == 3);
  // filter: only touches of the Email channel, grouped by campaign
  q.group_by = "campaign";
  q.filters = {{"channel", "Email"}};
  rows = by_key(m.breakdown(q));
  CHECK(rows.size() == 1);
  CHECK(rows["c-google"].revenue == 403);
  // test mode is kept apart
  q.filters.clear();
  q.livemode = false;
  CHECK(m.breakdown(q).empty());
}

TEST_CASE("read models: rebuilding in another order gives the same answers", "[projections]") {
  std::vector<std::string> recs;
  for (int i = 0; i < 40; ++i) {
    const std::string pi = "pi_" + std::to_string(i);
    const std::int64_t paid = 1790856000000 + i * 86400000LL / 3;
    recs.push_back(record(pi, 1, 100 + i, 0, "s" + std::to_string(i % 3), "t", 100 + i, 0, paid));
    recs.push_back(record(pi, 2, 100 + i, i % 7, "s" + std::to_string(i % 3), "t", 50, 50 + i, paid));
  }
  ReadModels a(temp_dir());
  apply_all(a, recs);
  std::mt19937 rng(7);
  std::shuffle(recs.begin(), recs.end(), rng);
  ReadModels b(temp_dir());
  apply_all(b, recs);
  for (const char* dim : {"source", "channel", "all", "method"}) {
    BreakdownQuery q;
    q.site = "s1";
    q.model = "linear";
    q.group_by = dim;
    const auto ra = a.breakdown(q);
    const auto rb = b.breakdown(q);
    REQUIRE(ra.size() == rb.size());
    for (std::size_t i = 0; i < ra.size(); ++i) {
      CHECK(ra[i].key == rb[i].key);
      CHECK(ra[i].revenue == rb[i].revenue);
      CHECK(ra[i].net == rb[i].net);
      CHECK(ra[i].payments == rb[i].payments);
    }
    const auto ta = a.timeseries(q);
    const auto tb = b.timeseries(q);
    REQUIRE(ta.size() == tb.size());
    for (std::size_t i = 0; i < ta.size(); ++i) CHECK(ta[i].revenue == tb[i].revenue);
  }
}

TEST_CASE("read models: time series, date range and payment pages", "[projections]") {
  ReadModels m(temp_dir());
  const std::int64_t day = 86400000;
  apply_all(m, {record("pi_a", 1, 100, 0, "x", "y", 100, 0, 1790856000000),
                record("pi_b", 1, 200, 0, "x", "y", 0, 200, 1790856000000 + day),
                record("pi_c", 1, 300, 0, "x", "y", 300, 0, 1790856000000 + 2 * day)});
  BreakdownQuery q;
  q.site = "s1";
  q.model = "first_touch";
  const auto series = m.timeseries(q);
  REQUIRE(series.size() == 3);
  CHECK(series[0].key == "2026-10-01");
  CHECK(series[0].revenue == 100);
  CHECK(series[2].key == "2026-10-03");
  q.from_day = "2026-10-02";
  q.to_day = "2026-10-02";
  q.group_by = "all";
  const auto one = m.breakdown(q);
  REQUIRE(one.size() == 1);
  CHECK(one[0].revenue == 200);
  q.from_day.clear();
  q.to_day.clear();
  auto page = m.payments(q, 2, "");
  REQUIRE(page.records.size() == 2);
  CHECK(page.records[0].find("pi_c") != std::string::npos);
  CHECK(page.records[1].find("pi_b") != std::string::npos);
  REQUIRE(!page.next_cursor.empty());
  page = m.payments(q, 2, page.next_cursor);
  REQUIRE(page.records.size() == 1);
  CHECK(page.records[0].find("pi_a") != std::string::npos);
  CHECK(page.next_cursor.empty());
  CHECK(m.payment("s1", "pi_b").has_value());
  CHECK(!m.payment("s2", "pi_b").has_value());
}

TEST_CASE("read models: a tombstone retires a merged payment key", "[projections]") {
  ReadModels m(temp_dir());
  apply_all(m, {record("ch_1", 1, 700, 0, "google", "bing", 700, 0),
                record("pi_1", 1, 300, 0, "google", "bing", 300, 0)});
  m.retire("s1/ch_1");
  m.retire("s1/unknown");  // nothing to retract
  BreakdownQuery q;
  q.site = "s1";
  q.model = "first_touch";
  q.group_by = "source";
  auto rows = by_key(m.breakdown(q));
  CHECK(rows["google"].revenue == 300);
  CHECK(rows["google"].payments == 1);
  CHECK(!m.payment("s1", "ch_1").has_value());
  CHECK(m.payments(q, 10, "").records.size() == 1);
}

TEST_CASE("read models: malformed records are refused with a reason", "[projections]") {
  ReadModels m(temp_dir());
  std::string err;
  CHECK(!m.apply("{not json", err));
  CHECK_THAT(err, Catch::Contains("malformed"));
  CHECK(!m.apply(R"({"site_id":"s1"})", err));
}

TEST_CASE("read models: UTC days", "[projections]") {
  using revtrace::projections::utc_day;
  CHECK(utc_day(0) == "1970-01-01");
  CHECK(utc_day(1790856000000) == "2026-10-01");
  CHECK(utc_day(951782400000) == "2000-02-29");
  CHECK(utc_day(-1) == "1969-12-31");
}

// ---------------------------------------------------------------------------------------------
// Hand-computed expectations over a small book of payments: currencies, live/test mode, refunds,
// revisions, a subscription renewal and an uneven three-way split.
namespace {

struct Touch {
  std::string channel;
  std::string source;
  std::string campaign;
  std::string country = "US";
  std::string device = "desktop";
};

struct Payment {
  std::string key;
  int revision = 1;
  bool live = true;
  std::string currency = "usd";
  std::int64_t amount = 0;
  std::int64_t refunded = 0;
  std::int64_t paid_at = 1790856000000;  // 2026-10-01T12:00:00Z
  std::string method = "metadata";
  std::string customer;
  std::vector<Touch> touches;
  std::map<std::string, std::vector<std::int64_t>> credits;  // per model; missing = `all`
  std::vector<std::int64_t> all;                             // credits for every model not listed

  [[nodiscard]] std::string json() const {
    auto str = [](const std::string& v) { return v.empty() ? std::string("null") : "\"" + v + "\""; };
    std::string t = "[";
    for (std::size_t i = 0; i < touches.size(); ++i) {
      const auto& x = touches[i];
      if (i) t += ",";
      t += R"({"at":1790000000000,"channel":")" + x.channel + R"(","source":)" + str(x.source) +
           R"(,"medium":null,"campaign":)" + str(x.campaign) +
           R"(,"term":null,"content":null,"click_id":null,"referrer":null,"landing_path":"/","browser":"Chrome","os":"macOS","device_class":")" +
           x.device + R"(","country":")" + x.country + "\"}";
    }
    t += "]";
    std::string c = "{";
    bool first = true;
    for (auto model : revtrace::projections::model_names()) {
      const auto it = credits.find(std::string(model));
      const auto& v = it == credits.end() ? all : it->second;
      if (!first) c += ",";
      first = false;
      c += "\"" + std::string(model) + "\":[";
      for (std::size_t i = 0; i < v.size(); ++i) c += (i ? "," : "") + std::to_string(v[i]);
      c += "]";
    }
    c += "}";
    return R"({"generation":1,"site_id":"s1","payment_key":")" + key + R"(","revision":)" +
           std::to_string(revision) + R"(,"livemode":)" + (live ? "true" : "false") +
           R"(,"revenue_type":"cash","amount":)" + std::to_string(amount) + R"(,"currency":")" +
           currency + R"(","refunded":)" + std::to_string(refunded) + R"(,"net":)" +
           std::to_string(amount - refunded) + R"(,"paid_at":)" + std::to_string(paid_at) +
           R"(,"method":")" + method + R"(","stripe":{"customer":)" + str(customer) +
           R"(},"visitor_ids":[],"email_hash":null,"touches":)" + t + R"(,"credits":)" + c + "}";
  }
};

const Touch kPaid{"Paid Search", "google", "brand"};
const Touch kMail{"Email", "newsletter", "autumn", "DE", "mobile"};
const Touch kOrganic{"Organic Search", "google", ""};

// The book: the story of each payment is in its comment; the newest revision is what counts.
std::vector<std::string> book() {
  std::vector<std::string> out;
  Payment a;  // pi_A: 100.00 usd, Paid Search then Email; refunded 25.00 in revision 2
  a.key = "pi_A";
  a.amount = 10000;
  a.customer = "cus_1";
  a.touches = {kPaid, kMail};
  a.credits = {{"first_touch", {10000, 0}}, {"last_touch", {0, 10000}}};
  a.all = {5000, 5000};
  out.push_back(a.json());
  a.revision = 2;
  a.refunded = 2500;
  out.push_back(a.json());
  Payment r = a;  // in_R: the subscription's renewal a month later inherits pi_A's touches
  r.key = "in_R";
  r.revision = 1;
  r.refunded = 0;
  r.method = "inherited";
  r.paid_at = 1790856000000 + 30LL * 86400000;  // 2026-10-31
  out.push_back(r.json());
  Payment e;  // pi_E: 30.00 eur, no touch at all
  e.key = "pi_E";
  e.currency = "eur";
  e.amount = 3000;
  e.method = "unattributed";
  out.push_back(e.json());
  Payment t;  // pi_T: test mode, must never appear in live answers
  t.key = "pi_T";
  t.live = false;
  t.amount = 999;
  t.touches = {kPaid};
  t.all = {999};
  out.push_back(t.json());
  Payment j;  // pi_J: 5000 jpy (zero-decimal), organic; first revision credited Email, corrected
  j.key = "pi_J";
  j.currency = "jpy";
  j.amount = 5000;
  j.touches = {kMail};
  j.all = {5000};
  out.push_back(j.json());
  j.revision = 2;
  j.touches = {kOrganic};
  out.push_back(j.json());
  Payment u;  // pi_U: 100.00 usd split three ways by linear, half refunded (rounding rule)
  u.key = "pi_U";
  u.amount = 10000;
  u.refunded = 5000;
  u.customer = "cus_1";  // the same customer as pi_A
  u.paid_at = 1790856000000 + 86400000;  // 2026-10-02
  u.touches = {kPaid, kMail, kOrganic};
  u.credits = {{"linear", {3334, 3333, 3333}}};
  u.all = {0, 0, 10000};
  out.push_back(u.json());
  return out;
}

std::map<std::pair<std::string, std::string>, BreakdownRow> by_key_currency(
    const std::vector<BreakdownRow>& rows) {
  std::map<std::pair<std::string, std::string>, BreakdownRow> m;
  for (const auto& r : rows) {
    REQUIRE(m.count({r.key, r.currency}) == 0);
    m[{r.key, r.currency}] = r;
  }
  return m;
}

void check_row(const std::map<std::pair<std::string, std::string>, BreakdownRow>& rows,
               const std::string& key, const std::string& currency, std::int64_t revenue,
               std::int64_t net, std::int64_t payments) {
  INFO(key << " " << currency);
  const auto it = rows.find({key, currency});
  REQUIRE(it != rows.end());
  CHECK(it->second.revenue == revenue);
  CHECK(it->second.net == net);
  CHECK(it->second.payments == payments);
}

BreakdownQuery query(const std::string& model, const std::string& group_by) {
  BreakdownQuery q;
  q.site = "s1";
  q.model = model;
  q.group_by = group_by;
  return q;
}

}  // namespace

TEST_CASE("read models: hand-computed book (currencies, modes, refunds, renewals, rounding)",
          "[projections]") {
  ReadModels m(temp_dir());
  apply_all(m, book());

  // linear by channel. pi_A: 5000/5000, net 7500 -> 3750/3750. in_R: 5000/5000 net the same.
  // pi_U: 3334/3333/3333, net 5000 -> 1667/1666.65/1666.65 -> largest remainder, ties to the
  // earlier touch: 1667/1667/1666.
  auto rows = by_key_currency(m.breakdown(query("linear", "channel")));
  check_row(rows, "Paid Search", "usd", 5000 + 5000 + 3334, 3750 + 5000 + 1667, 3);
  check_row(rows, "Email", "usd", 5000 + 5000 + 3333, 3750 + 5000 + 1667, 3);
  check_row(rows, "Organic Search", "usd", 3333, 1666, 1);
  check_row(rows, "Organic Search", "jpy", 5000, 5000, 1);  // the correction moved it off Email
  check_row(rows, "(unattributed)", "eur", 3000, 3000, 1);
  CHECK(rows.size() == 5);

  // first_touch: a payment only counts for the values that earned some of it.
  rows = by_key_currency(m.breakdown(query("first_touch", "source")));
  // pi_A and in_R through Paid Search, pi_U through its organic (also google) first touch
  check_row(rows, "google", "usd", 30000, 7500 + 10000 + 5000, 3);
  check_row(rows, "google", "jpy", 5000, 5000, 1);
  CHECK(rows.count({"newsletter", "usd"}) == 0);

  // payment dimensions take the whole amount
  rows = by_key_currency(m.breakdown(query("last_touch", "method")));
  check_row(rows, "metadata", "usd", 20000, 12500, 2);
  check_row(rows, "inherited", "usd", 10000, 10000, 1);
  check_row(rows, "unattributed", "eur", 3000, 3000, 1);
  check_row(rows, "metadata", "jpy", 5000, 5000, 1);

  rows = by_key_currency(m.breakdown(query("time_decay", "all")));
  check_row(rows, "all", "usd", 30000, 22500, 3);
  check_row(rows, "all", "eur", 3000, 3000, 1);
  check_row(rows, "all", "jpy", 5000, 5000, 1);

  // every touch dimension
  rows = by_key_currency(m.breakdown(query("last_touch", "country")));
  check_row(rows, "DE", "usd", 20000, 17500, 2);  // last touch of pi_A, in_R is the Email one
  check_row(rows, "US", "usd", 10000, 5000, 1);   // pi_U's last touch is organic (US)
  rows = by_key_currency(m.breakdown(query("last_touch", "device_class")));
  check_row(rows, "mobile", "usd", 20000, 17500, 2);
  rows = by_key_currency(m.breakdown(query("last_touch", "campaign")));
  check_row(rows, "autumn", "usd", 20000, 17500, 2);
  check_row(rows, "(none)", "usd", 10000, 5000, 1);
  check_row(rows, "(none)", "jpy", 5000, 5000, 1);
  for (const char* dim : {"medium", "referrer", "landing_path", "browser"}) {
    rows = by_key_currency(m.breakdown(query("last_touch", dim)));
    const std::string expected = std::string(dim) == "landing_path" ? "/"
                                 : std::string(dim) == "browser"    ? "Chrome"
                                                                    : "(none)";
    INFO(dim);
    check_row(rows, expected, "usd", 30000, 22500, 3);
  }

  // currency and mode filters
  auto q = query("linear", "channel");
  q.currency = "eur";
  rows = by_key_currency(m.breakdown(q));
  CHECK(rows.size() == 1);
  check_row(rows, "(unattributed)", "eur", 3000, 3000, 1);
  q = query("linear", "channel");
  q.livemode = false;
  rows = by_key_currency(m.breakdown(q));
  CHECK(rows.size() == 1);
  check_row(rows, "Paid Search", "usd", 999, 999, 1);

  // a touch filter recomputes from the records: Email touches only, linear, by source
  q = query("linear", "source");
  q.filters = {{"channel", "Email"}};
  rows = by_key_currency(m.breakdown(q));
  CHECK(rows.size() == 1);
  check_row(rows, "newsletter", "usd", 13333, 10417, 3);
  // a filter that keeps every touch gives the aggregate's answer (payments without touches drop
  // out of touch-filtered answers)
  auto unfiltered = query("position_based", "channel");
  unfiltered.currency = "usd";
  q = unfiltered;
  q.filters = {{"browser", "Chrome"}};
  const auto filtered = by_key_currency(m.breakdown(q));
  const auto aggregate = by_key_currency(m.breakdown(unfiltered));
  CHECK(filtered.size() == aggregate.size());
  for (const auto& [k, row] : aggregate) check_row(filtered, k.first, k.second, row.revenue, row.net, row.payments);

  // time series: the renewal lands on its own day
  auto series = m.timeseries(query("linear", "all"));
  auto days = by_key_currency(series);
  check_row(days, "2026-10-01", "usd", 10000, 7500, 1);
  check_row(days, "2026-10-02", "usd", 10000, 5000, 1);
  check_row(days, "2026-10-31", "usd", 10000, 10000, 1);
  check_row(days, "2026-10-01", "jpy", 5000, 5000, 1);
  q = query("linear", "all");
  q.from_day = "2026-10-02";
  q.to_day = "2026-10-30";
  days = by_key_currency(m.timeseries(q));
  CHECK(days.size() == 1);
  check_row(days, "2026-10-02", "usd", 10000, 5000, 1);

  // ROAS: pi_A and pi_U are one customer; the renewal (same customer) too.
  revtrace::projections::AdSpendEntry spend{"s1", "2026-10-01", "Paid Search", "google", "brand", 4000, "usd", 1};
  m.apply_spend(spend);
  spend.amount = 6000;  // the latest value per key wins
  m.apply_spend(spend);
  m.apply_spend({"s1", "2026-10-01", "Paid Search", "google", "brand", 700, "eur", 1});
  q = query("linear", "campaign");
  q.currency = "usd";
  const auto roas = m.roas(q);
  REQUIRE(!roas.empty());
  CHECK(roas[0].key == "brand");
  CHECK(roas[0].spend == 6000);
  CHECK(roas[0].revenue == 13334);
  CHECK(roas[0].customers == 1);
  CHECK(roas[0].payments == 3);
}

TEST_CASE("read models: rebuilding from the compacted topic equals the incremental models",
          "[projections]") {
  using revtrace::projections::TopicPosition;
  // The incremental history: every revision, a tombstone of a merged key, and ad spend updates.
  auto history = book();
  history.push_back(record("ch_merged", 1, 700, 0, "google", "bing", 700, 0));
  ReadModels incremental(temp_dir());
  std::int64_t offset = 0;
  for (const auto& r : history) {
    std::string err;
    REQUIRE(incremental.apply(r, err, TopicPosition{"ar", 0, offset++}));
  }
  incremental.retire("s1/ch_merged", TopicPosition{"ar", 0, offset++});
  incremental.apply_spend({"s1", "2026-10-01", "Email", "", "", 100, "usd", 1});
  incremental.apply_spend({"s1", "2026-10-01", "Email", "", "", 250, "usd", 2});
  CHECK(incremental.next_offset("ar", 0) == offset);
  CHECK(!incremental.next_offset("ar", 1).has_value());

  // What compaction leaves: the newest record per key, and no merged key.
  std::map<std::string, std::string> latest;
  for (const auto& r : book()) {
    const auto k = r.find("\"payment_key\":\"") + 15;
    latest[r.substr(k, r.find('"', k) - k)] = r;
  }
  ReadModels rebuilt(temp_dir());
  for (const auto& [key, r] : latest) {
    std::string err;
    REQUIRE(rebuilt.apply(r, err));
  }
  rebuilt.apply_spend({"s1", "2026-10-01", "Email", "", "", 250, "usd", 2});
  const auto a = incremental.dump();
  const auto b = rebuilt.dump();
  CHECK(a.size() > 100);
  CHECK(a == b);

  // Dropping the models leaves them empty, with no stored position (re-consume from offset 0).
  const std::string dir = temp_dir();
  {
    ReadModels m(dir);
    apply_all(m, book());
    m.skip({"ar", 3, 41});
    CHECK(m.next_offset("ar", 3) == 42);
  }
  ReadModels::drop(dir);
  ReadModels empty(dir);
  CHECK(empty.dump().empty());
  CHECK(!empty.next_offset("ar", 3).has_value());
}

TEST_CASE("read models: drop refuses a directory in use", "[projections]") {
  const std::string dir = temp_dir();
  ReadModels in_use(dir);
  CHECK_THROWS(ReadModels::drop(dir));
}

TEST_CASE("read models: ROAS divides by live spend only, test spend only when marked, filtered "
          "spend by the keys spend has",
          "[projections]") {
  using revtrace::projections::AdSpendEntry;
  ReadModels m(temp_dir());
  apply_all(m, book());
  // Live spend of 2026-10-01, and a rehearsal entry explicitly marked as test money.
  m.apply_spend({"s1", "2026-10-01", "Paid Search", "google", "brand", 6000, "usd", 1});
  m.apply_spend({"s1", "2026-10-01", "Email", "newsletter", "autumn", 1500, "usd", 1});
  m.apply_spend({"s1", "2026-10-01", "", "", "autumn", 500, "usd", 1});  // no channel: (none)
  m.apply_spend({"s1", "2026-10-01", "Paid Search", "google", "brand", 300, "usd", 1, false});

  auto roas_of = [&](BreakdownQuery q) {
    std::map<std::string, revtrace::projections::RoasRow> out;
    for (const auto& r : m.roas(q)) {
      REQUIRE(out.count(r.key) == 0);
      out[r.key] = r;
    }
    return out;
  };
  auto check = [](const std::map<std::string, revtrace::projections::RoasRow>& rows,
                  const std::string& key, std::int64_t spend, std::int64_t revenue,
                  std::int64_t payments) {
    INFO(key);
    const auto it = rows.find(key);
    REQUIRE(it != rows.end());
    CHECK(it->second.spend == spend);
    CHECK(it->second.revenue == revenue);
    CHECK(it->second.payments == payments);
  };

  // Live, linear, by campaign. Revenue: pi_A and in_R 5000/5000 (brand/autumn); pi_U
  // 3334/3333/3333 (brand/autumn/(none)). The test entry is not live money.
  auto q = query("linear", "campaign");
  q.currency = "usd";
  auto rows = roas_of(q);
  CHECK(rows.size() == 3);
  check(rows, "brand", 6000, 13334, 3);
  check(rows, "autumn", 2000, 13333, 3);
  check(rows, "(none)", 0, 3333, 1);

  // Test mode: pi_T's 999 against the 300 marked as test money, and nothing else.
  q.livemode = false;
  rows = roas_of(q);
  CHECK(rows.size() == 1);
  check(rows, "brand", 300, 999, 1);

  // A filter on a key spend has restricts the spend too: Paid Search touches and Paid Search spend.
  q = query("linear", "campaign");
  q.currency = "usd";
  q.filters = {{"channel", "Paid Search"}};
  rows = roas_of(q);
  CHECK(rows.size() == 1);
  check(rows, "brand", 6000, 13334, 3);
  // Spend without a channel is the channel (none), as a touch without one is.
  q.filters = {{"channel", "(none)"}};
  rows = roas_of(q);
  CHECK(rows.size() == 1);
  check(rows, "autumn", 500, 0, 0);
  // By channel, for the autumn campaign only: Email touches of pi_A, in_R, pi_U.
  q = query("linear", "channel");
  q.currency = "usd";
  q.filters = {{"campaign", "autumn"}};
  rows = roas_of(q);
  CHECK(rows.size() == 2);
  check(rows, "Email", 1500, 13333, 3);
  check(rows, "(none)", 500, 0, 0);
  q.filters = {{"campaign", "autumn"}, {"source", "newsletter"}};
  rows = roas_of(q);
  CHECK(rows.size() == 1);
  check(rows, "Email", 1500, 13333, 3);

  // Spend knows no country or device: such a filter is refused, never divided by all spend.
  for (const char* dim : {"country", "device_class", "medium", "method"}) {
    INFO(dim);
    q = query("linear", "campaign");
    q.filters = {{dim, "DE"}};
    CHECK_THROWS_AS(m.roas(q), std::invalid_argument);
    CHECK(!revtrace::projections::is_spend_dimension(dim));
  }
  for (const char* dim : {"channel", "source", "campaign"}) {
    CHECK(revtrace::projections::is_spend_dimension(dim));
  }
}

TEST_CASE("read models: control characters in values cannot corrupt read-model keys",
          "[projections]") {
  // \u001f is the key-part separator and \u001e the escape byte; values carry them verbatim
  // (e.g. utm_campaign=spring%1Fsale). Each distinct value must stay a distinct, intact row.
  const Touch odd{"Paid\\u001fSearch", "goo\\u001egle", "spring\\u001fsale"};
  const Touch plain{"Paid", "goo\\u001e_gle", "spring"};
  const Touch sale{"Paid", "a\\u001fb", "sale"};
  std::vector<std::string> recs;
  auto add = [&](const std::string& key, std::int64_t amount, const Touch& t) {
    Payment p;
    p.key = key;
    p.amount = amount;
    p.touches = {t};
    p.all = {amount};
    recs.push_back(p.json());
  };
  add("pi_odd", 1000, odd);
  add("pi_plain", 500, plain);
  add("pi_sale", 70, sale);
  add("pi_\\u001f\\u001ekey", 3, plain);  // even a payment key with both bytes
  ReadModels m(temp_dir());
  apply_all(m, recs);

  auto rows = by_key_currency(m.breakdown(query("linear", "campaign")));
  CHECK(rows.size() == 3);
  check_row(rows, "spring\x1fsale", "usd", 1000, 1000, 1);
  check_row(rows, "spring", "usd", 503, 503, 2);
  check_row(rows, "sale", "usd", 70, 70, 1);
  rows = by_key_currency(m.breakdown(query("linear", "channel")));
  CHECK(rows.size() == 2);
  check_row(rows, "Paid\x1fSearch", "usd", 1000, 1000, 1);
  check_row(rows, "Paid", "usd", 573, 573, 3);
  rows = by_key_currency(m.breakdown(query("linear", "source")));
  CHECK(rows.size() == 3);
  check_row(rows, "goo\x1egle", "usd", 1000, 1000, 1);
  check_row(rows, "goo\x1e_gle", "usd", 503, 503, 2);
  check_row(rows, "a\x1f" "b", "usd", 70, 70, 1);
  // The filtered path (recomputed from the records) agrees.
  auto q = query("linear", "campaign");
  q.filters = {{"channel", "Paid\x1fSearch"}};
  rows = by_key_currency(m.breakdown(q));
  CHECK(rows.size() == 1);
  check_row(rows, "spring\x1fsale", "usd", 1000, 1000, 1);
  // Every payment is listed and found, the odd key included.
  const auto page = m.payments(query("linear", "all"), 10, "");
  CHECK(page.records.size() == 4);
  CHECK(m.payment("s1", "pi_\x1f\x1ekey").has_value());

  // Spend with the same bytes in channel, source and campaign lands on exactly those values.
  m.apply_spend({"s1", "2026-10-01", "Paid\x1fSearch", "goo\x1egle", "spring\x1fsale", 250, "usd", 1});
  m.apply_spend({"s1", "2026-10-01", "Paid", "goo\x1e_gle", "spring", 100, "usd", 1});
  q = query("linear", "campaign");
  q.currency = "usd";
  std::map<std::string, revtrace::projections::RoasRow> roas;
  for (const auto& r : m.roas(q)) roas[r.key] = r;
  CHECK(roas.size() == 3);
  CHECK(roas["spring\x1fsale"].spend == 250);
  CHECK(roas["spring\x1fsale"].revenue == 1000);
  CHECK(roas["spring"].spend == 100);
  CHECK(roas["spring"].revenue == 503);
  CHECK(roas["sale"].spend == 0);
  q.group_by = "source";
  q.filters = {{"channel", "Paid\x1fSearch"}};
  roas.clear();
  for (const auto& r : m.roas(q)) roas[r.key] = r;
  CHECK(roas.size() == 1);
  CHECK(roas["goo\x1egle"].spend == 250);
  CHECK(roas["goo\x1egle"].revenue == 1000);

  // Removing what was added leaves no aggregate behind (retraction finds the same keys).
  m.retire("s1/pi_odd");
  rows = by_key_currency(m.breakdown(query("linear", "campaign")));
  CHECK(rows.size() == 2);
  CHECK(rows.count({"spring\x1fsale", "usd"}) == 0);
}
