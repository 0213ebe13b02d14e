#pragma once
// Compact binary encoding of the engine's state values (private to revtrace::domain).
//
// Why not JSON: state is read and rewritten on every record, so it must be cheap, and it must be
// canonical — the same logical value always encodes to the same bytes (sorted containers, no
// floats, fixed field order) so "did anything change?" is a byte comparison. Each value starts
// with a one-byte format tag so a future layout can be told apart from this one.
//
// Integers are LEB128 varints (signed ones zigzag-mapped); strings are length-prefixed. A Reader
// never throws: a truncated or malformed value makes ok() false and every later read return a
// zero value, and the caller treats the value as corrupt.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "processor/domain/touch.hpp"

namespace revtrace::domain::codec {

class Writer {
 public:
  void u64(std::uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void i64(std::int64_t v) {
    u64((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void boolean(bool v) { out_.push_back(v ? '\1' : '\0'); }
  void str(std::string_view s) {
    u64(s.size());
    out_.append(s);
  }
  void strings(const std::set<std::string>& s) {
    u64(s.size());
    for (const auto& x : s) str(x);
  }
  void touch(const Touch& t);
  // Bytes appended as they are (an already encoded part of a value).
  void raw(std::string_view bytes) { out_.append(bytes); }
  // Starts a new value, keeping the buffer's capacity.
  void clear() noexcept { out_.clear(); }
  [[nodiscard]] const std::string& bytes() const noexcept { return out_; }
  [[nodiscard]] std::string take() noexcept { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) noexcept : in_(in) {}
  std::uint64_t u64() noexcept {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return fail();
      const auto b = static_cast<unsigned char>(in_.front());
      in_.remove_prefix(1);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return fail();
  }
  std::int64_t i64() noexcept {
    const auto u = u64();
    return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  bool boolean() noexcept {
    if (in_.empty()) return fail() != 0;
    const char c = in_.front();
    in_.remove_prefix(1);
    return c != '\0';
  }
  std::string str() {
    const auto n = u64();
    if (n > in_.size()) return fail(), std::string();
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  // A string as a view into the input (valid while the input is).
  std::string_view view() noexcept {
    const auto n = u64();
    if (n > in_.size()) return fail(), std::string_view();
    const auto s = in_.substr(0, n);
    in_.remove_prefix(n);
    return s;
  }
  // The bytes not read yet.
  [[nodiscard]] std::string_view rest() const noexcept { return in_; }
  std::set<std::string> strings() {
    std::set<std::string> out;
    const auto n = count();
    for (std::uint64_t i = 0; i < n && ok_; ++i) out.insert(str());
    return out;
  }
  // A container size, bounded by the bytes left so a corrupt length cannot allocate wildly.
  std::uint64_t count() noexcept {
    const auto n = u64();
    if (n > in_.size()) return fail();
    return n;
  }
  Touch touch();
  // The source fields of a touch (what same_source compares), as views; the rest is skipped.
  struct TouchSource {
    std::string_view source, medium, campaign, term, content, click_id;
  };
  TouchSource touch_source() noexcept;
  [[nodiscard]] bool ok() const noexcept { return ok_; }
  [[nodiscard]] bool done() const noexcept { return in_.empty(); }

 private:
  std::uint64_t fail() noexcept {
    ok_ = false;
    in_ = {};
    return 0;
  }
  std::string_view in_;
  bool ok_ = true;
};

inline void Writer::touch(const Touch& t) {
  i64(t.at);
  for (const std::string* f :
       {&t.channel, &t.source, &t.medium, &t.campaign, &t.term, &t.content, &t.click_id,
        &t.referrer, &t.landing_path, &t.browser, &t.os, &t.device_class, &t.country}) {
    str(*f);
  }
}

inline Touch Reader::touch() {
  Touch t;
  t.at = i64();
  for (std::string* f :
       {&t.channel, &t.source, &t.medium, &t.campaign, &t.term, &t.content, &t.click_id,
        &t.referrer, &t.landing_path, &t.browser, &t.os, &t.device_class, &t.country}) {
    *f = str();
  }
  return t;
}

inline Reader::TouchSource Reader::touch_source() noexcept {
  TouchSource t;
  (void)i64();   // at
  (void)view();  // channel
  t.source = view();
  t.medium = view();
  t.campaign = view();
  t.term = view();
  t.content = view();
  t.click_id = view();
  for (int i = 0; i < 6; ++i) (void)view();  // referrer, landing path, browser, os, class, country
  return t;
}

}  // namespace revtrace::domain::codec
