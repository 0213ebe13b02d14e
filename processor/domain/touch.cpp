#include "processor/domain/touch.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <boost/url.hpp>
#include <utility>

#include "processor/domain/channels.hpp"

namespace revtrace::domain {
namespace {

// ---- Text hygiene ------------------------------------------------------------------------------

void lower_ascii(std::string& s) {
  for (auto& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

// Decoded URL text can be anything (%FF, %00, %0A). Touch strings end up in JSON records and
// report keys, so they are made valid UTF-8 (invalid bytes -> U+FFFD), control characters become
// spaces, and the ends are trimmed.
std::string clean(std::string_view in) {
  // Printable ASCII (most text) is already clean: only the ends are trimmed.
  if (std::all_of(in.begin(), in.end(), [](char c) { return c >= 0x20 && c < 0x7F; })) {
    const auto first = in.find_first_not_of(' ');
    if (first == std::string_view::npos) return {};
    return std::string(in.substr(first, in.find_last_not_of(' ') - first + 1));
  }
  std::string out;
  out.reserve(in.size());
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(in[i]); };
  std::size_t i = 0;
  while (i < in.size()) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      out += (c < 0x20 || c == 0x7F) ? ' ' : static_cast<char>(c);
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    }
    bool valid = len != 0 && i + len <= in.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      const unsigned char b = byte(i + k);
      valid = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (valid) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  const auto b = out.find_first_not_of(' ');
  if (b == std::string::npos) return {};
  return out.substr(b, out.find_last_not_of(' ') - b + 1);
}

std::string clean_lower(std::string_view in) {
  auto s = clean(in);
  lower_ascii(s);
  return s;
}

std::string normalize_host(std::string_view raw) {
  std::string host = clean_lower(raw);
  while (!host.empty() && host.back() == '.') host.pop_back();
  if (host.starts_with("www.")) host.erase(0, 4);
  return host;
}

// A configured name (a domain of a rule list, an affiliate parameter) as normalize_host() /
// clean_lower() would leave it: itself when it already is (the usual case, no copy), otherwise
// normalized into `scratch`.
bool canonical(std::string_view s, bool host) {
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return false;
  if (host && (s.back() == '.' || s.starts_with("www."))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7F && !(c >= 'A' && c <= 'Z'); });
}

std::string_view rule_host(std::string_view raw, std::string& scratch) {
  if (canonical(raw, true)) return raw;
  scratch = normalize_host(raw);
  return scratch;
}

std::string_view rule_name(std::string_view raw, std::string& scratch) {
  if (canonical(raw, false)) return raw;
  scratch = clean_lower(raw);
  return scratch;
}

// host equals domain or is a subdomain of it.
bool within(std::string_view host, std::string_view domain) {
  if (domain.empty()) return false;
  if (host == domain) return true;
  return host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.';
}

// ---- URL parsing -------------------------------------------------------------------------------

struct ParsedUrl {
  std::string scheme;  // lower-case, may be empty
  std::string host;    // normalize_host()
  std::string path;    // decoded
  std::vector<std::pair<std::string, std::string>> params;  // lower-case keys, decoded values
};

bool is_scheme_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '-' || c == '.';
}

// "scheme://" at the start of text.
std::size_t scheme_length(std::string_view text) {
  const auto sep = text.find("://");
  if (sep == std::string_view::npos || sep == 0) return 0;
  const auto scheme = text.substr(0, sep);
  if (!((scheme[0] >= 'a' && scheme[0] <= 'z') || (scheme[0] >= 'A' && scheme[0] <= 'Z'))) return 0;
  return std::all_of(scheme.begin(), scheme.end(), is_scheme_char) ? sep : 0;
}

// Where the authority starts: after "scheme://" (the scheme, lower-cased, into `scheme`) or
// after "//"; npos when the text starts with neither.
std::size_t authority_start(std::string_view text, std::string& scheme) {
  if (const auto n = scheme_length(text); n != 0) {
    scheme = std::string(text.substr(0, n));
    lower_ascii(scheme);
    return n + 3;
  }
  return text.starts_with("//") ? 2 : std::string_view::npos;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding that keeps a malformed escape as it is.
std::string lenient_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int h = hex_value(s[i + 1]), l = hex_value(s[i + 2]);
      if (h >= 0 && l >= 0) {
        out += static_cast<char>(h * 16 + l);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && s[i] == '+') ? ' ' : s[i];
  }
  return out;
}

// Appends a query's '&'-separated parameters: keys decoded and lower-cased, values decoded ('+' is
// a space). `keep_empty`: an empty part (and an empty query) is a parameter with an empty key, as
// Boost.URL reads it; otherwise empty parts are skipped.
void append_query_params(std::string_view query, bool keep_empty,
                         std::vector<std::pair<std::string, std::string>>& params) {
  if (query.empty() && !keep_empty) return;
  std::size_t pos = 0;
  while (true) {
    const auto amp = query.find('&', pos);
    const auto part = query.substr(pos, amp == std::string_view::npos ? query.npos : amp - pos);
    if (keep_empty || !part.empty()) {
      const auto eq = part.find('=');
      auto key = lenient_decode(part.substr(0, eq), true);
      lower_ascii(key);
      params.emplace_back(std::move(key), eq == std::string_view::npos
                                              ? std::string()
                                              : lenient_decode(part.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
}

// For text Boost.URL rejects (a space, a bad escape, a bad port): split on the delimiters and
// decode what is there.
ParsedUrl parse_lenient(std::string_view s) {
  ParsedUrl p;
  if (const auto hash = s.find('#'); hash != std::string_view::npos) s = s.substr(0, hash);
  std::string_view query;
  if (const auto q = s.find('?'); q != std::string_view::npos) {
    query = s.substr(q + 1);
    s = s.substr(0, q);
  }
  const std::size_t start = authority_start(s, p.scheme);
  std::string_view path = s;
  if (start != std::string_view::npos) {
    const auto end = s.find('/', start);
    auto authority = s.substr(start, end == std::string_view::npos ? s.npos : end - start);
    path = end == std::string_view::npos ? std::string_view() : s.substr(end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
      authority.remove_prefix(at + 1);
    }
    if (authority.starts_with('[')) {
      authority = authority.substr(0, authority.find(']') + 1);
    } else if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
      authority = authority.substr(0, colon);
    }
    // A host is letters, digits and a few delimiters (or raw UTF-8 of a non-punycoded IDN);
    // anything else is not a host worth reporting.
    const bool plausible = std::all_of(authority.begin(), authority.end(), [](char c) {
      return is_scheme_char(c) || c == '_' || c == ':' || c == '[' || c == ']' ||
             static_cast<unsigned char>(c) >= 0x80;
    });
    if (plausible) p.host = normalize_host(authority);
  }
  p.path = clean(lenient_decode(path, false));
  append_query_params(query, /*keep_empty=*/false, p.params);
  return p;
}

// Characters that may follow the scheme of a plain URL: unreserved, sub-delims, ':', '/', '?'.
// Not '%' (escapes need decoding), '@' and '[' (user info, IP literals), '#' (counted apart), nor
// anything Boost.URL rejects (space, quotes, '<', '>', '\\', '^', '`', '{', '|', '}', controls,
// bytes above 0x7F).
constexpr auto kPlainChars = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (const char c : std::string_view("-._~!$&'()*+,;=:/?")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

// Most URLs a pixel reports are plain: "scheme://host[:port]/path?query#fragment" with none of
// the characters above. For those the reading is a split on the delimiters, the same as
// Boost.URL's (touch_test checks both over a generated corpus), at a fraction of its cost (it was
// most of extract_touch). nullopt: not plain, the general parser reads it.
std::optional<ParsedUrl> parse_plain(std::string_view text) {
  ParsedUrl p;
  const std::size_t start = authority_start(text, p.scheme);
  if (start == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(start);
  std::size_t hash = std::string_view::npos;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const auto c = static_cast<unsigned char>(rest[i]);
    if (kPlainChars[c]) continue;
    if (c != '#' || hash != std::string_view::npos) return std::nullopt;
    hash = i;
  }
  rest = rest.substr(0, hash);
  const auto authority_end = rest.find_first_of("/?");
  std::string_view host = rest.substr(0, authority_end);
  rest = authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    const auto port = host.substr(colon + 1);
    if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    host = host.substr(0, colon);
  }
  p.host = normalize_host(host);
  const auto q = rest.find('?');
  p.path = clean(rest.substr(0, q));
  if (q == std::string_view::npos) return p;
  // Without '%' in the text, decoding only turns '+' into a space.
  const std::string_view query = rest.substr(q + 1);
  append_query_params(query, /*keep_empty=*/true, p.params);
  return p;
}

ParsedUrl parse_general(std::string_view text) {
  try {
    const auto r = boost::urls::parse_uri_reference(text);
    if (!r) return parse_lenient(text);
    ParsedUrl p;
    p.scheme = std::string(r->scheme());
    lower_ascii(p.scheme);
    p.host = normalize_host(std::string_view(r->encoded_host()));
    // The decoded path; without escapes it is the encoded one, and no decoded copy is made.
    const std::string_view encoded_path = r->encoded_path();
    p.path = encoded_path.find('%') == std::string_view::npos ? clean(encoded_path) : clean(r->path());
    if (r->has_query() && r->encoded_query().empty()) {
      // One parameter, empty and without a value. Boost 1.81 iterates an empty query followed by
      // a fragment ("/?#top") as two parameters over uninitialised memory (boostorg/url#864).
      p.params.emplace_back();
      return p;
    }
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;
    p.params.reserve(r->params(opts).size());
    for (auto param : r->params(opts)) {
      lower_ascii(param.key);
      if (!param.has_value) param.value.clear();
      p.params.emplace_back(std::move(param.key), std::move(param.value));
    }
    return p;
  } catch (const std::exception&) {
    // Boost.URL reports errors as values; this only guards against allocation failures and the
    // like, so that extract_touch keeps its no-throw promise for any input.
    return parse_lenient(text);
  }
}

// Never throws. Text without a scheme that does not start with '/', '?' or '#' is read as
// host-first ("shop.example/pricing?x=1"), the way people paste URLs.
ParsedUrl parse_url(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\n' ||
                           text.front() == '\r')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' ||
                           text.back() == '\r')) {
    text.remove_suffix(1);
  }
  if (text.empty()) return {};
  std::string prepared;  // only when the text needs the "//" of a host-first reading
  if (scheme_length(text) == 0 && !text.starts_with('/') && !text.starts_with('?') &&
      !text.starts_with('#')) {
    prepared = "//";
    prepared += text;
    text = prepared;
  }
  if (auto p = parse_plain(text)) return std::move(*p);
  return parse_general(text);
}

// The first non-empty value of a parameter, cleaned.
std::string param(const ParsedUrl& p, std::string_view key) {
  for (const auto& [k, v] : p.params) {
    if (k == key) {
      if (auto c = clean(v); !c.empty()) return c;
    }
  }
  return {};
}

// Click id parameters in priority order, with the source and medium they imply (README.md).
struct ClickId {
  std::string_view param, source, medium;
};
constexpr ClickId kClickIds[] = {
    {"gclid", "google", "cpc"},     {"gbraid", "google", "cpc"},   {"wbraid", "google", "cpc"},
    {"msclkid", "bing", "cpc"},     {"ttclid", "tiktok", "cpc"},   {"li_fat_id", "linkedin", "cpc"},
    {"twclid", "twitter", "cpc"},
    // Last, and organic: Meta appends fbclid to every outbound link, organic posts included.
    {"fbclid", "facebook", "social"},
};

// The host a referrer names. Android apps send android-app://<package>/; the package read
// backwards is a host ("com.google.android.gm" -> "gm.android.google.com").
std::string lookup_host(const ParsedUrl& ref) {
  if (ref.scheme != "android-app") return ref.host;
  std::string out;
  std::string_view rest = ref.host;
  while (!rest.empty()) {
    const auto dot = rest.rfind('.');
    if (!out.empty()) out += '.';
    out += rest.substr(dot == std::string_view::npos ? 0 : dot + 1);
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(0, dot);
  }
  return out;
}

}  // namespace

Touch extract_touch(const PageviewFacts& pv, const SiteRules& rules) {
  Touch t;
  t.at = pv.at;
  t.browser = clean(pv.browser);
  t.os = clean(pv.os);
  t.device_class = clean(pv.device_class);
  t.country = clean(pv.country);

  const ParsedUrl url = parse_url(pv.url);
  t.landing_path = !url.path.empty() ? url.path : !url.host.empty() ? "/" : "";
  t.source = param(url, "utm_source");
  lower_ascii(t.source);
  t.medium = param(url, "utm_medium");
  lower_ascii(t.medium);
  t.campaign = param(url, "utm_campaign");
  t.term = param(url, "utm_term");
  t.content = param(url, "utm_content");

  const ClickId* click = nullptr;
  for (const auto& c : kClickIds) {
    if (!param(url, c.param).empty()) {
      click = &c;
      t.click_id = std::string(c.param);
      break;
    }
  }
  std::string affiliate;
  std::string scratch;
  for (const auto& name : rules.affiliate_params) {
    const auto key = rule_name(name, scratch);
    if (key.empty()) continue;
    if (affiliate = clean_lower(param(url, key)); !affiliate.empty()) break;
  }

  std::string referrer_lookup;
  if (!pv.referrer.empty()) {
    const ParsedUrl ref = parse_url(pv.referrer);
    const std::string lookup = lookup_host(ref);
    bool internal = ref.host.empty() || ref.host == url.host;
    for (const auto& own : rules.own_domains) {
      internal = internal || within(ref.host, rule_host(own, scratch));
    }
    for (const auto& ignored : rules.ignored_referrers) {
      internal = internal || within(ref.host, rule_host(ignored, scratch));
    }
    if (!internal) {
      t.referrer = ref.host;
      referrer_lookup = lookup;
    }
  }

  // Inference, strongest evidence first: UTMs as given; an ad click id; an affiliate parameter;
  // fbclid; the external referrer. Inferred values only fill what the UTMs left empty.
  // fbclid is weaker than an affiliate parameter: a partner's link shared on Facebook still
  // credits the partner.
  const bool paid_click = click != nullptr && click->param != "fbclid";
  if (!paid_click && !affiliate.empty()) {
    if (t.source.empty()) t.source = affiliate;
    if (t.medium.empty()) t.medium = "affiliate";
  } else if (click != nullptr) {
    if (t.source.empty()) t.source = std::string(click->source);
    if (t.medium.empty()) t.medium = std::string(click->medium);
  }
  if (t.source.empty() && !t.referrer.empty()) {
    auto implied = referrer_source(referrer_lookup);
    t.source = std::move(implied.source);
    if (t.medium.empty()) t.medium = std::move(implied.medium);
  }
  t.channel = std::string(classify_channel(t));
  return t;
}

namespace detail {

std::optional<bool> plain_url_reading_agrees(std::string_view text) {
  const auto plain = parse_plain(text);
  if (!plain) return std::nullopt;
  const auto general = parse_general(text);
  return plain->scheme == general.scheme && plain->host == general.host &&
         plain->path == general.path && plain->params == general.params;
}

}  // namespace detail

bool is_direct(const Touch& t) {
  return t.source.empty() && t.medium.empty() && t.campaign.empty() && t.term.empty() &&
         t.content.empty() && t.click_id.empty() && t.referrer.empty();
}

bool same_source(const Touch& a, const Touch& b) {
  return a.source == b.source && a.medium == b.medium && a.campaign == b.campaign &&
         a.term == b.term && a.content == b.content && a.click_id == b.click_id;
}

}  // namespace revtrace::domain
