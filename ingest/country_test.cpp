// CountryDatabase against a real MaxMind-format database: ip-location-db's geo-whois-asn-country
// (npm @ip-location-db/geo-whois-asn-country-mmdb, pinned in tests/js/package-lock.json; data
// CC BY 4.0 by the NRO, nro.net), whose entries carry `country_code`. The expected countries were
// read from that very file with the npm `mmdb-lib` reader, so a new pinned version that moves an
// address shows up here first. And forwarded_client_address, the client address behind a proxy.
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/config.hpp"
#include "ingest/country.hpp"

using revtrace::ingest::CountryDatabase;
using revtrace::ingest::forwarded_client_address;

namespace {

const std::string kDatabase = REVTRACE_COUNTRY_TEST_DB;

const CountryDatabase& database() {
  INFO(kDatabase << " is missing: run scripts/install-node-deps.sh (npm ci in tests/js)");
  REQUIRE(std::filesystem::is_regular_file(kDatabase));
  static const CountryDatabase db(kDatabase);
  return db;
}

std::string country(const char* address) {
  return database().country_of(boost::asio::ip::make_address(address));
}

std::string forwarded(std::string_view value) {
  const auto a = forwarded_client_address(value);
  return a ? a->to_string() : "none";
}

}  // namespace

TEST_CASE("country: well-known IPv4 addresses", "[country]") {
  CHECK(country("8.8.8.8") == "US");        // Google Public DNS
  CHECK(country("193.0.6.139") == "NL");    // RIPE NCC, Amsterdam
  CHECK(country("133.242.0.1") == "JP");    // SAKURA Internet
  CHECK(country("80.67.169.12") == "FR");   // FDN's resolver
}

TEST_CASE("country: well-known IPv6 addresses, and IPv4-mapped ones as IPv4", "[country]") {
  CHECK(country("2001:4860:4860::8888") == "US");      // Google Public DNS
  CHECK(country("2001:67c:2e8::1") == "NL");           // RIPE NCC
  CHECK(country("2a00:1450:4001:82a::200e") == "IE");  // Google Europe
  CHECK(country("::ffff:8.8.8.8") == "US");
  CHECK(country("::ffff:193.0.6.139") == "NL");
}

TEST_CASE("country: addresses not in the database have no country", "[country]") {
  CHECK(country("10.0.0.1").empty());
  CHECK(country("127.0.0.1").empty());
  CHECK(country("0.0.0.0").empty());
  CHECK(country("::1").empty());
  CHECK(country("fd00::1").empty());
  CHECK(country("::ffff:127.0.0.1").empty());
}

// The pinned database maps some non-public ranges to a country (192.168.1.1 to AU): addresses
// that never identify a visitor's location are not looked up at all.
TEST_CASE("country: private, shared, link-local and multicast addresses are never looked up", "[country]") {
  for (const char* a : {"192.168.1.1", "172.16.5.4", "172.31.255.255", "100.64.0.1", "169.254.1.1",
                        "224.0.0.251", "255.255.255.255", "::ffff:192.168.1.1", "fe80::1",
                        "fc00::1", "ff02::1", "::"}) {
    INFO(a);
    CHECK(country(a).empty());
  }
}

TEST_CASE("country: a database that cannot be opened is a configuration error naming the file",
          "[country]") {
  CHECK_THROWS_MATCHES(CountryDatabase("/nonexistent/geo.mmdb"), revtrace::common::ConfigError,
                       Catch::Message("gateway.maxmind_db: cannot open /nonexistent/geo.mmdb: Error opening the specified MaxMind DB file"));
  // Not a MaxMind database at all (this very source file).
  CHECK_THROWS_AS(CountryDatabase(__FILE__), revtrace::common::ConfigError);
}

TEST_CASE("country: the client address is the right-most X-Forwarded-For entry", "[country]") {
  CHECK(forwarded("203.0.113.7") == "203.0.113.7");
  CHECK(forwarded("198.51.100.1, 203.0.113.7") == "203.0.113.7");   // a forged left part is ignored
  CHECK(forwarded("garbage,  \t8.8.8.8 \t") == "8.8.8.8");
  CHECK(forwarded("2001:db8::1") == "2001:db8::1");
  CHECK(forwarded("10.0.0.1,2001:db8::1") == "2001:db8::1");
  CHECK(forwarded("[2001:db8::1]") == "2001:db8::1");
  CHECK(forwarded("[2001:db8::1]:4711") == "2001:db8::1");
  CHECK(forwarded("203.0.113.7:4711") == "203.0.113.7");
  CHECK(forwarded("::ffff:8.8.8.8") == "::ffff:8.8.8.8");
}

TEST_CASE("country: malformed client address headers give no address", "[country]") {
  for (const char* bad : {"", " ", ",", "8.8.8.8,", "8.8.8.8, ", "unknown", "_hidden", "8.8.8", "8.8.8.8.8",
                          "256.1.1.1", "08.8.8.8", "8.8.8.8:", "8.8.8.8:http", "8.8.8.8:123456", "[8.8.8.8]",
                          "[2001:db8::1", "[2001:db8::1]x", "[2001:db8::1]:", "[]", "2001:db8::g",
                          "for=8.8.8.8", "\"8.8.8.8\"", "8.8.8.8 8.8.4.4", "\x01\xff"}) {
    INFO("header value: '" << bad << "'");
    CHECK(forwarded(bad) == "none");
  }
  // Long values and embedded NULs are just garbage too.
  CHECK(forwarded(std::string(100000, '1')) == "none");
  CHECK(forwarded(std::string("8.8.8.8\0x", 9)) == "none");
}
