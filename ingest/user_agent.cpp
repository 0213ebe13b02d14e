#include "ingest/user_agent.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <cctype>

namespace revtrace::ingest {
namespace {

bool has(std::string_view s, std::string_view needle) { return s.find(needle) != std::string_view::npos; }

Device classify(std::string_view ua) {
  Device d;
  if (ua.empty()) return d;
  // Case-insensitive rules on one ASCII-lowered copy (per-character tolower was a hot spot).
  thread_local std::string lowered;
  lowered.assign(ua);
  for (char& c : lowered) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  const std::string_view lower = lowered;
  if (has(lower, "bot") || has(lower, "crawler") || has(lower, "spider") || has(lower, "headlesschrome") ||
      has(lower, "lighthouse")) {
    d.device_class = "bot";
  }
  if (has(ua, "Edg/") || has(ua, "EdgA/") || has(ua, "EdgiOS/")) {
    d.browser = "Edge";
  } else if (has(ua, "OPR/") || has(ua, "Opera")) {
    d.browser = "Opera";
  } else if (has(ua, "SamsungBrowser/")) {
    d.browser = "Samsung Internet";
  } else if (has(ua, "Firefox/") || has(ua, "FxiOS/")) {
    d.browser = "Firefox";
  } else if (has(ua, "Chrome/") || has(ua, "CriOS/") || has(ua, "Chromium/")) {
    d.browser = "Chrome";
  } else if (has(ua, "Safari/") && has(ua, "Version/")) {
    d.browser = "Safari";
  } else if (has(ua, "Trident/") || has(ua, "MSIE ")) {
    d.browser = "Internet Explorer";
  } else {
    d.browser = "Other";
  }
  if (has(ua, "iPhone") || has(ua, "iPod")) {
    d.os = "iOS";
  } else if (has(ua, "iPad")) {
    d.os = "iPadOS";
  } else if (has(ua, "Android")) {
    d.os = "Android";
  } else if (has(ua, "CrOS")) {
    d.os = "ChromeOS";
  } else if (has(ua, "Windows")) {
    d.os = "Windows";
  } else if (has(ua, "Mac OS X") || has(ua, "Macintosh")) {
    d.os = "macOS";
  } else if (has(ua, "Linux")) {
    d.os = "Linux";
  } else {
    d.os = "Other";
  }
  if (d.device_class.empty()) {
    if (has(ua, "iPad") || has(ua, "Tablet") || (d.os == "Android" && !has(ua, "Mobile"))) {
      d.device_class = "tablet";
    } else if (has(ua, "Mobi") || has(ua, "iPhone") || has(ua, "iPod")) {
      d.device_class = "mobile";
    } else {
      d.device_class = "desktop";
    }
  }
  return d;
}

}  // namespace

Device parse_user_agent(std::string_view ua) {
  // Visitors send the same User-Agent on every request: remember the last few per thread.
  struct Entry {
    std::string ua;
    Device device;
  };
  thread_local std::array<Entry, 8> cache{};
  thread_local std::size_t next = 0;
  if (ua.empty() || ua.size() > 512) return classify(ua);
  for (const auto& e : cache) {
    if (e.ua == ua) return e.device;
  }
  Entry& slot = cache[next++ % cache.size()];
  slot.ua.assign(ua);
  slot.device = classify(ua);
  return slot.device;
}

}  // namespace revtrace::ingest
