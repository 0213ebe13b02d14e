#pragma once
// Visitor country from a MaxMind-format database, read with libmaxminddb: any .mmdb whose entries
// carry the code as `country.iso_code` (MaxMind's GeoLite2-Country / GeoIP2-Country, DB-IP's
// country lite) or as a top-level `country_code` (the ip-location-db databases, e.g.
// geo-whois-asn-country). The address is looked up and forgotten: the gateway never stores IP
// addresses.
#include <maxminddb.h>

#include <boost/asio/ip/address.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace revtrace::ingest {

class CountryDatabase {
 public:
  // Opens (memory-maps) the database; throws common::ConfigError when it cannot be opened (a
  // start-up failure, like every configuration error).
  explicit CountryDatabase(const std::string& path);
  ~CountryDatabase();
  CountryDatabase(const CountryDatabase&) = delete;
  CountryDatabase& operator=(const CountryDatabase&) = delete;

  // ISO 3166-1 alpha-2 code, upper case; empty when the address is not in the database or its
  // entry has no two-letter code under either key (`country.iso_code` is tried first).
  // IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are looked up as the IPv4 address.
  // Thread-safe: libmaxminddb lookups on an opened database only read the mapping.
  [[nodiscard]] std::string country_of(const boost::asio::ip::address& address) const;

 private:
  std::unique_ptr<MMDB_s> db_;
};

// The client address in a header a proxy in front of the gateway sets (gateway.client_ip_header):
// the right-most entry of a comma-separated X-Forwarded-For-style list, i.e. the address that the
// nearest proxy appended. Entries to its left were sent by the client or by proxies further out
// and can be forged by anyone; the right-most one is what our own load balancer saw as its peer.
// (With several trusted proxies in a chain, configure the outermost one to send a single-valued
// header such as CF-Connecting-IP or X-Real-IP instead.) Accepts "a.b.c.d", "a.b.c.d:port",
// "2001:db8::1", "[2001:db8::1]" and "[2001:db8::1]:port", surrounded by spaces or tabs; the
// RFC 7239 `Forwarded: for=...` syntax is not parsed. Anything else - empty, "unknown", an
// obfuscated identifier, garbage - is nullopt: no country, never an error for the request.
[[nodiscard]] std::optional<boost::asio::ip::address> forwarded_client_address(std::string_view header_value);

}  // namespace revtrace::ingest
