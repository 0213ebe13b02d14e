// Email hashes and content digests against published test vectors, with contexts reused across
// calls and keys (hashing.cpp keeps them per thread).
#include "processor/domain/hashing.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

namespace revtrace::domain {
namespace {

std::string hex(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

constexpr const char* kJefe = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
constexpr const char* kHiThere = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";

// RFC 4231 test cases 2 and 1, then 2 again: a second key between two uses of the first.
std::vector<std::string> email_hashes() {
  return {email_hash("Jefe", "what do ya want for nothing?"),
          email_hash(std::string(20, '\x0b'), "Hi There"),
          email_hash("Jefe", "what do ya want for nothing?")};
}

}  // namespace

TEST_CASE("email hashes are HMAC-SHA256 in lower-case hex, per key, call after call") {
  const std::vector<std::string> expected{kJefe, kHiThere, kJefe};
  CHECK(email_hashes() == expected);
  CHECK(email_hashes() == expected);
  // More keys than the thread keeps contexts for: the contexts are dropped and built again.
  std::string first;
  for (int i = 0; i < 1100; ++i) {
    const auto h = email_hash("site-key-" + std::to_string(i), "jane@example.com");
    if (i == 0) first = h;
    CHECK(h.size() == 64);
  }
  CHECK(email_hash("site-key-0", "jane@example.com") == first);
  CHECK(email_hashes() == expected);
  std::vector<std::string> on_other_thread;  // contexts are per thread
  std::thread([&] { on_other_thread = email_hashes(); }).join();
  CHECK(on_other_thread == expected);
}

TEST_CASE("content digests are raw SHA-256") {
  // FIPS 180-2 examples.
  CHECK(hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace revtrace::domain
