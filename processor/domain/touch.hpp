#pragma once
// Touches: a session's traffic source, taken from its landing pageview. Pure functions of the
// pageview and the site's rules; the rules are documented in processor/domain/README.md.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace revtrace::domain {

using Millis = std::int64_t;  // event time, Unix milliseconds

// Per-site knobs of touch extraction.
struct SiteRules {
  // Referrers from these hosts (and their subdomains) are internal navigation, not a source.
  std::vector<std::string> own_domains;
  // Query parameters that name an affiliate/referral partner (matched case-insensitively).
  std::vector<std::string> affiliate_params{"ref", "via", "aff", "affiliate"};
  // Hosts (and subdomains) a visitor comes *back* from in the middle of a visit: payment pages
  // and sign-in providers. Treated like own domains so that returning from Stripe Checkout or
  // "Sign in with Google" neither starts a new session nor becomes a Referral / Organic Search
  // touch that would steal the credit of the touch that brought the visitor.
  std::vector<std::string> ignored_referrers{
      "stripe.com",          "paypal.com",       "accounts.google.com", "appleid.apple.com",
      "login.microsoftonline.com", "login.live.com"};
};

// What extract_touch reads from a pageview. Views: the caller keeps the text alive for the call.
struct PageviewFacts {
  std::string_view url, referrer;
  Millis at = 0;
  std::string_view browser, os, device_class, country;
};

// Every string field: empty = absent. Every string is valid UTF-8 without control characters.
struct Touch {
  Millis at = 0;
  std::string channel;  // classify_channel(*this), filled by extract_touch
  std::string source;   // lower-case: utm_source, else inferred (click id, affiliate, referrer)
  std::string medium;   // lower-case: utm_medium, else inferred ("cpc", "affiliate", "organic", ...)
  std::string campaign, term, content;  // utm_campaign / utm_term / utm_content, case kept
  std::string click_id;  // the click id parameter's name, e.g. "gclid" (never its value)
  std::string referrer;  // external referrer host, lower-case, "www." stripped
  std::string landing_path;  // decoded path of the landing URL, "/" when the URL has none
  std::string browser, os, device_class, country;  // copied from the pageview
  bool operator==(const Touch&) const = default;
};

// The touch of a pageview: UTMs, click ids, affiliate parameter, external referrer, landing path,
// device, country — and its channel. Never throws for any input text; a malformed URL yields what
// can be had (a lenient parse when Boost.URL rejects it).
[[nodiscard]] Touch extract_touch(const PageviewFacts& pageview, const SiteRules& rules);

// No UTM, no click id, no affiliate, no external referrer: every source field is empty.
[[nodiscard]] bool is_direct(const Touch& touch);

// Whether two touches name the same traffic source: source, medium, campaign, term, content and
// click id are equal. Time, landing path, device and the referrer host do not count (the referrer
// already shows in the source when it is the source; with UTMs the UTMs name the source).
[[nodiscard]] bool same_source(const Touch& a, const Touch& b);

namespace detail {
// For touch_test only. extract_touch reads plain URLs ("scheme://host[:port]/path?query#fragment"
// without escapes, user info or IP literals) with a split on the delimiters and everything else
// with Boost.URL (or a lenient split when Boost.URL rejects the text). nullopt: `text` is not
// plain; otherwise whether both readings give the same scheme, host, path and parameters.
[[nodiscard]] std::optional<bool> plain_url_reading_agrees(std::string_view text);
}  // namespace detail

}  // namespace revtrace::domain
