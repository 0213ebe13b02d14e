#pragma once
// Visitor country from a MaxMind-format database (GeoLite2-Country, GeoIP2-Country, DB-IP's
// country lite, ... any .mmdb with country.iso_code), read with libmaxminddb. The address is
// looked up and forgotten: the gateway never stores IP addresses.
#include <maxminddb.h>

#include <boost/asio/ip/address.hpp>
#include <memory>
#include <string>

namespace revtrace::ingest {

class CountryDatabase {
 public:
  // Opens (memory-maps) the database; throws common::ConfigError when it cannot be opened (a
  // start-up failure, like every configuration error).
  explicit CountryDatabase(const std::string& path);
  ~CountryDatabase();
  CountryDatabase(const CountryDatabase&) = delete;
  CountryDatabase& operator=(const CountryDatabase&) = delete;

  // ISO 3166-1 alpha-2 code, upper case; empty when the address is not in the database.
  // Thread-safe: libmaxminddb lookups on an opened database only read the mapping.
  [[nodiscard]] std::string country_of(const boost::asio::ip::address& address) const;

 private:
  std::unique_ptr<MMDB_s> db_;
};

}  // namespace revtrace::ingest
