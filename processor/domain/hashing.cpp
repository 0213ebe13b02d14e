#include "processor/domain/hashing.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <map>
#include <memory>
#include <stdexcept>

namespace revtrace::domain {

namespace {

// OpenSSL 3's one-shot HMAC() and EVP_Digest() look the algorithm up in the provider registry
// (locks, string compares) and set the HMAC key up again at every call: most of their cost for
// the few bytes of an email or a revenue record. Each thread keeps the fetched algorithms and one
// context per key instead, reinitialised per call (EVP_MAC_init without a key keeps the key).
struct MacFree {
  void operator()(EVP_MAC* m) const noexcept { EVP_MAC_free(m); }
  void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
  void operator()(EVP_MD* m) const noexcept { EVP_MD_free(m); }
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};

[[noreturn]] void failed(const char* what) {
  throw std::runtime_error(std::string("revtrace::domain: ") + what + " failed");
}

EVP_MAC_CTX* hmac_sha256_for(std::string_view key) {
  thread_local std::unique_ptr<EVP_MAC, MacFree> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  // One entry per site's key: a handful. Site ids come from the records, so the map is bounded.
  constexpr std::size_t kMaxKeys = 1024;
  thread_local std::map<std::string, std::unique_ptr<EVP_MAC_CTX, MacFree>, std::less<>> by_key;
  if (auto it = by_key.find(key); it != by_key.end()) {
    if (EVP_MAC_init(it->second.get(), nullptr, 0, nullptr) != 1) failed("HMAC-SHA256");
    return it->second.get();
  }
  if (!mac) failed("fetching HMAC");
  if (by_key.size() >= kMaxKeys) by_key.clear();
  std::unique_ptr<EVP_MAC_CTX, MacFree> ctx(EVP_MAC_CTX_new(mac.get()));
  if (!ctx) failed("HMAC-SHA256");
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   params) != 1) {
    failed("HMAC-SHA256");
  }
  return by_key.emplace(std::string(key), std::move(ctx)).first->second.get();
}

}  // namespace

std::string email_hash(std::string_view key, std::string_view normalised_email) {
  EVP_MAC_CTX* ctx = hmac_sha256_for(key);
  unsigned char mac[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  if (EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(normalised_email.data()),
                     normalised_email.size()) != 1 ||
      EVP_MAC_final(ctx, mac, &len, sizeof mac) != 1) {
    failed("HMAC-SHA256");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (std::size_t i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

std::string sha256(std::string_view data) {
  thread_local std::unique_ptr<EVP_MD, MacFree> md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  thread_local std::unique_ptr<EVP_MD_CTX, MacFree> ctx(EVP_MD_CTX_new());
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!md || !ctx || EVP_DigestInit_ex2(ctx.get(), md.get(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out, &len) != 1) {
    failed("SHA-256");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace revtrace::domain
