#include "ingest/country.hpp"

#include <sys/socket.h>
#include <netinet/in.h>

#include <cctype>
#include <cstring>

#include "common/config.hpp"

namespace revtrace::ingest {

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
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    const auto bytes = address.to_v4().to_bytes();
    std::memcpy(&in->sin_addr, bytes.data(), bytes.size());
  } else if (address.is_v6()) {
    const auto v6 = address.to_v6();
    if (v6.is_v4_mapped()) return country_of(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6));
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
  MMDB_entry_data_s data{};
  if (MMDB_get_value(&result.entry, &data, "country", "iso_code", nullptr) != MMDB_SUCCESS ||
      !data.has_data || data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2) {
    return {};
  }
  std::string code(data.utf8_string, 2);
  for (char& c : code) {
    if (!std::isalpha(static_cast<unsigned char>(c))) return {};
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return code;
}

}  // namespace revtrace::ingest
