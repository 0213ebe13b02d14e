#pragma once
// Device fields from a User-Agent string: browser, OS and device class. Deliberately small and
// fast (substring rules in a fixed order); the full UA string is never stored.
#include <string>
#include <string_view>

namespace revtrace::ingest {

struct Device {
  std::string browser;       // Chrome, Safari, Firefox, Edge, Opera, Samsung Internet, ...
  std::string os;            // Windows, macOS, iOS, Android, Linux, ChromeOS
  std::string device_class;  // desktop, mobile, tablet, bot
};

[[nodiscard]] Device parse_user_agent(std::string_view ua);

}  // namespace revtrace::ingest
