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
        R"({"site_id":"s1","day":"2026-10-01","channel":"Paid Search","source":"google","campaign":"brand","amount":12345,"currency":"usd","updated_at":7})");
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
