#include "ingest/country.hpp"

#include <sys/socket.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "common/config.hpp"

namespace revtrace::ingest {
namespace {

// The two-letter code at `path` in the entry, upper case; empty when the path is absent, is not a
// string, or the string is not two ASCII letters.
std::string code_at(MMDB_entry_s& entry, const char* const* path) {
  MMDB_entry_data_s data{};
  if (MMDB_aget_value(&entry, &data, path) != MMDB_SUCCESS || !data.has_data ||
      data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2) {
    return {};
  }
  std::string code(data.utf8_string, 2);
  for (char& c : code) {
    if (!std::isalpha(static_cast<unsigned char>(c))) return {};
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return code;
}

// Loopback, private (RFC 1918, ULA), shared (RFC 6598), link-local, multicast, reserved and
// unspecified addresses say nothing about where a visitor is (and country databases map some of
// them anyway): they are not looked up.
bool locates_nobody(const boost::asio::ip::address_v4& a) {
  const auto b = a.to_bytes();
  return b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224 ||
         (b[0] == 172 && (b[1] & 0xF0) == 16) || (b[0] == 192 && b[1] == 168) ||
         (b[0] == 169 && b[1] == 254) || (b[0] == 100 && (b[1] & 0xC0) == 64);
}

bool locates_nobody(const boost::asio::ip::address_v6& a) {
  const auto b = a.to_bytes();
  return a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_link_local() ||
         (b[0] & 0xFE) == 0xFC;  // fc00::/7, unique local
}

bool is_port(std::string_view text) {
  return !text.empty() && text.size() <= 5 &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

CountryDatabase::CountryDatabase(const std::string& path) : db_(std::make_unique<MMDB_s>()) {
  const int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, db_.get());
  if (status != MMDB_SUCCESS) {
    db_.reset();
    throw common::ConfigError("gateway.maxmind_db: cannot open " + path + ": " + MMDB_strerror(status));
  }
}

CountryDatabase::~CountryDatabase() {
  if (db_) MMDB_close(db_.get());
}

std::string CountryDatabase::country_of(const boost::asio::ip::address& address) const {
  sockaddr_storage storage{};
  if (address.is_v4()) {
    if (locates_nobody(address.to_v4())) return {};
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    const auto bytes = address.to_v4().to_bytes();
    std::memcpy(&in->sin_addr, bytes.data(), bytes.size());
  } else if (address.is_v6()) {
    const auto v6 = address.to_v6();
    if (v6.is_v4_mapped()) return country_of(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6));
    if (locates_nobody(v6)) return {};
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    const auto bytes = v6.to_bytes();
    std::memcpy(&in6->sin6_addr, bytes.data(), bytes.size());
  } else {
    return {};
  }
  int mmdb_error = MMDB_SUCCESS;
  MMDB_lookup_result_s result =
      MMDB_lookup_sockaddr(db_.get(), reinterpret_cast<const sockaddr*>(&storage), &mmdb_error);
  if (mmdb_error != MMDB_SUCCESS || !result.found_entry) return {};
  static const char* const iso_code[] = {"country", "iso_code", nullptr};  // MaxMind's layout
  static const char* const country_code[] = {"country_code", nullptr};     // ip-location-db's
  std::string code = code_at(result.entry, iso_code);
  return code.empty() ? code_at(result.entry, country_code) : code;
}

std::optional<boost::asio::ip::address> forwarded_client_address(std::string_view header_value) {
  const auto comma = header_value.rfind(',');
  std::string_view entry = comma == std::string_view::npos ? header_value : header_value.substr(comma + 1);
  while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t')) entry.remove_prefix(1);
  while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) entry.remove_suffix(1);
  bool want_v6 = false;
  bool want_v4 = false;
  if (entry.starts_with('[')) {  // [v6] or [v6]:port
    const auto close = entry.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const auto rest = entry.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && is_port(rest.substr(1)))) return std::nullopt;
    entry = entry.substr(1, close - 1);
    want_v6 = true;
  } else if (const auto colon = entry.find(':');
             colon != std::string_view::npos && entry.find(':', colon + 1) == std::string_view::npos) {
    // One colon: a.b.c.d:port (a bare IPv6 address has at least two).
    if (!is_port(entry.substr(colon + 1))) return std::nullopt;
    entry = entry.substr(0, colon);
    want_v4 = true;
  }
  // make_address stops at a NUL: "8.8.8.8\0junk" must not pass as 8.8.8.8.
  if (entry.empty() || entry.find('\0') != std::string_view::npos) return std::nullopt;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(entry, ec);
  if (ec || (want_v6 && !address.is_v6()) || (want_v4 && !address.is_v4())) return std::nullopt;
  return address;
}

}  // namespace revtrace::ingest
