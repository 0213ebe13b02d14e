#include "projections/ad_spend.hpp"

#include <catch2/catch.hpp>

using namespace revtrace::projections;

TEST_CASE("ad spend: JSON entries, each bad field named", "[projections][ad-spend]") {
  auto ok = parse_ad_spend_json(
      R"({"entries":[{"day":"2026-10-01","channel":"Paid Search","source":"google","campaign":"brand","amount":12345,"currency":"usd"},
                    {"day":"2026-10-02","campaign":"retargeting","amount":0,"currency":"eur"}]})",
      "s1", 7);
  REQUIRE(ok.error.empty());
  REQUIRE(ok.entries.size() == 2);
  CHECK(ok.entries[0].key() == "s1|2026-10-01|Paid Search|google|brand|usd");
  CHECK(ok.entries[0].to_json() ==
        R"({"site_id":"s1","day":"2026-10-01","channel":"Paid Search","source":"google","campaign":"brand","amount":12345,"currency":"usd","livemode":true,"updated_at":7})");
  CHECK(ok.entries[0].livemode);
  CHECK(ok.entries[1].channel.empty());
  const auto round_trip = parse_ad_spend_record(ok.entries[0].to_json());
  REQUIRE(round_trip.has_value());
  CHECK(round_trip->key() == ok.entries[0].key());
  CHECK(round_trip->amount == 12345);

  const std::vector<std::pair<std::string, std::string>> bad{
      {"{", "not valid JSON"},
      {R"({"rows":[]})", "entries"},
      {R"([{"day":"2026-10-01","channel":"x","amount":"5","currency":"usd"}])", "entries[0].amount"},
      {R"([{"day":"2026-10-01","channel":"x","amount":1.5,"currency":"usd"}])", "entries[0].amount"},
      {R"([{"day":"2026-10-01","channel":"x","amount":-1,"currency":"usd"}])", "amount must be a non-negative"},
      {R"([{"day":"01/10/2026","channel":"x","amount":1,"currency":"usd"}])", "day must be"},
      {R"([{"day":"2026-10-01","channel":"x","amount":1,"currency":"USD"}])", "currency must be"},
      {R"([{"day":"2026-10-01","amount":1,"currency":"usd"}])", "at least one of channel"},
      {R"([{"day":"2026-10-01","channel":"a|b","amount":1,"currency":"usd"}])", "'|'"},
      {R"([{"day":"2026-10-01","channel":7,"amount":1,"currency":"usd"}])", "entries[0].channel must be a string"},
      {R"([{"day":"2026-10-01","channel":"x","amount":1,"currency":"usd"},7])", "entries[1] must be an object"},
      {R"([{"day":"2026-10-01","channel":"x","amount":1,"currency":"usd","livemode":"false"}])", "entries[0].livemode must be true or false"},
      {R"([{"day":"2026-10-01","channel":"x","amount":1,"currency":"usd","livemode":0}])", "entries[0].livemode must be true or false"},
  };
  for (const auto& [body, why] : bad) {
    INFO(body);
    const auto r = parse_ad_spend_json(body, "s1", 7);
    CHECK_THAT(r.error, Catch::Contains(why));
  }
}

TEST_CASE("ad spend: CSV exports in any column order, quoted fields, BOM, named errors",
          "[projections][ad-spend]") {
  const auto ok = parse_ad_spend_csv(
      "\xEF\xBB\xBF" "currency,amount,day,campaign,source,channel\r\n"
      "usd,4500,2026-10-01,\"brand, exact\",google,Paid Search\r\n"
      "\r\n"
      "eur,99,2026-10-02,\"say \"\"hi\"\"\",,Email\n",
      "s1", 1);
  REQUIRE(ok.error.empty());
  REQUIRE(ok.entries.size() == 2);
  CHECK(ok.entries[0].campaign == "brand, exact");
  CHECK(ok.entries[0].amount == 4500);
  CHECK(ok.entries[0].channel == "Paid Search");
  CHECK(ok.entries[1].campaign == "say \"hi\"");
  CHECK(ok.entries[1].source.empty());
  CHECK(ok.entries[1].currency == "eur");

  CHECK_THAT(parse_ad_spend_csv("", "s1", 1).error, Catch::Contains("empty"));
  CHECK_THAT(parse_ad_spend_csv("day,channel,currency\n2026-10-01,x,usd\n", "s1", 1).error,
             Catch::Contains("no 'amount' column"));
  CHECK_THAT(parse_ad_spend_csv("day,channel,amount,currency\n2026-10-01,x,12.50,usd\n", "s1", 1).error,
             Catch::Contains("line 2: amount must be an integer"));
  CHECK_THAT(parse_ad_spend_csv("day,channel,amount,currency\n2026-10-01,x,1,usd\n2026-13-01,x,1,usd\n", "s1", 1).error,
             Catch::Contains("line 3: day must be"));
}

TEST_CASE("ad spend: live money unless an entry says livemode=false, test spend has its own key",
          "[projections][ad-spend]") {
  const auto json = parse_ad_spend_json(
      R"([{"day":"2026-10-01","channel":"Paid Search","source":"google","campaign":"brand","amount":500,"currency":"usd","livemode":false},
         {"day":"2026-10-01","channel":"Paid Search","source":"google","campaign":"brand","amount":9000,"currency":"usd","livemode":true},
         {"day":"2026-10-01","channel":"Paid Search","source":"google","campaign":"brand","amount":9100,"currency":"usd"}])",
      "s1", 7);
  REQUIRE(json.error.empty());
  REQUIRE(json.entries.size() == 3);
  CHECK(!json.entries[0].livemode);
  CHECK(json.entries[1].livemode);
  CHECK(json.entries[2].livemode);
  // On the compacted topic the test entry never replaces the live one of the same day and keys.
  CHECK(json.entries[0].key() == "s1|2026-10-01|Paid Search|google|brand|usd|test");
  CHECK(json.entries[1].key() == "s1|2026-10-01|Paid Search|google|brand|usd");
  CHECK(json.entries[0].to_json() ==
        R"({"site_id":"s1","day":"2026-10-01","channel":"Paid Search","source":"google","campaign":"brand","amount":500,"currency":"usd","livemode":false,"updated_at":7})");
  const auto test_record = parse_ad_spend_record(json.entries[0].to_json());
  REQUIRE(test_record.has_value());
  CHECK(!test_record->livemode);
  CHECK(test_record->key() == json.entries[0].key());

  // Records written before the field existed are live spend; an ill-typed livemode is malformed.
  const auto old = parse_ad_spend_record(
      R"({"site_id":"s1","day":"2026-10-01","channel":"Email","source":"","campaign":"","amount":5,"currency":"usd","updated_at":1744675200000})");
  REQUIRE(old.has_value());
  CHECK(old->livemode);
  CHECK(old->key() == "s1|2026-10-01|Email|||usd");
  CHECK(!parse_ad_spend_record(
             R"({"site_id":"s1","day":"2026-10-01","channel":"Email","source":"","campaign":"","amount":5,"currency":"usd","livemode":"no","updated_at":1744675200000})")
             .has_value());

  // CSV: an optional livemode column (empty = live).
  const auto csv = parse_ad_spend_csv(
      "day,channel,amount,currency,livemode\n2026-10-01,Email,1,usd,false\n2026-10-01,Email,2,usd,\n"
      "2026-10-01,Email,3,usd,true\n",
      "s1", 1);
  REQUIRE(csv.error.empty());
  REQUIRE(csv.entries.size() == 3);
  CHECK(!csv.entries[0].livemode);
  CHECK(csv.entries[1].livemode);
  CHECK(csv.entries[2].livemode);
  CHECK_THAT(parse_ad_spend_csv("day,channel,amount,currency,livemode\n2026-10-01,Email,1,usd,test\n", "s1", 1).error,
             Catch::Contains("line 2: livemode must be true, false or empty"));
}
