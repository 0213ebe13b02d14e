#pragma once
// Touches: a session's traffic source, taken from its landing pageview. Pure functions; the rules
// are documented in processor/domain/README.md.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace revtrace::domain {

using Millis = std::int64_t;  // event time, Unix milliseconds

struct SiteRules {
  std::vector<std::string> own_domains;  // referrers from these (and subdomains) are internal
  std::vector<std::string> affiliate_params{"ref", "via", "aff", "affiliate"};
};

struct PageviewFacts {
  std::string_view url, referrer;
  Millis at = 0;
  std::string_view browser, os, device_class, country;
};

// Every string field: empty = absent.
struct Touch {
  Millis at = 0;
  std::string channel, source, medium, campaign, term, content;
  std::string click_id;  // the click id parameter's name, e.g. "gclid"
  std::string referrer;  // external referrer host, "www." stripped
  std::string landing_path, browser, os, device_class, country;
  bool operator==(const Touch&) const = default;
};

// The touch of a pageview: UTMs, click ids, affiliate parameter, external referrer, landing path,
// device, country — and its channel. Never throws; a malformed URL yields what can be had.
[[nodiscard]] Touch extract_touch(const PageviewFacts& pageview, const SiteRules& rules);
// No UTM, no click id, no affiliate, no external referrer.
[[nodiscard]] bool is_direct(const Touch& touch);
// Whether two touches name the same traffic source (time, path and device do not count).
[[nodiscard]] bool same_source(const Touch& a, const Touch& b);

}  // namespace revtrace::domain
