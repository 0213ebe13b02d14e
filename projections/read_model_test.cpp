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
