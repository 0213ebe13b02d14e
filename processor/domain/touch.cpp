#include "processor/domain/touch.hpp"

#include <algorithm>
#include <boost/url.hpp>
#include <cctype>

#include "processor/domain/channels.hpp"

namespace revtrace::domain {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string strip_www(std::string host) {
  host = lower(host);
  if (host.starts_with("www.")) host.erase(0, 4);
  return host;
}

// host equals domain or is a subdomain of it.
bool within(std::string_view host, std::string_view domain) {
  if (host == domain) return true;
  return host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.';
}

struct Parsed {
  std::string host;
  std::string path;
  std::vector<std::pair<std::string, std::string>> params;  // decoded, '+' as space
};

Parsed parse(std::string_view text) {
  Parsed p;
  auto r = boost::urls::parse_uri_reference(text);
  if (!r) return p;
  try {
    p.host = strip_www(std::string(r->encoded_host()));
    p.path = r->path();
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;
    for (const auto& param : r->params(opts)) {
      p.params.emplace_back(lower(param.key), param.has_value ? std::string(param.value) : "");
    }
  } catch (const std::exception&) {
    // A malformed escape: keep what was read.
  }
  return p;
}

const std::string* param(const Parsed& p, std::string_view key) {
  for (const auto& [k, v] : p.params) {
    if (k == key && !v.empty()) return &v;
  }
  return nullptr;
}

// Click id parameters in priority order, with the source and medium they imply without UTMs.
struct ClickId {
  std::string_view param, source, medium;
};
constexpr ClickId kClickIds[] = {
    {"gclid", "google", "cpc"},        {"gbraid", "google", "cpc"},
    {"wbraid", "google", "cpc"},       {"msclkid", "bing", "cpc"},
    {"ttclid", "tiktok", "paid_social"}, {"li_fat_id", "linkedin", "paid_social"},
    {"twclid", "twitter", "paid_social"},
    // Facebook adds fbclid to organic clicks too: social unless the UTMs say paid.
    {"fbclid", "facebook", "social"},
};

// A referrer host's source name: the engine or network name for known ones, else the host.
std::string source_of_host(const std::string& host) {
  // "google.co.uk" -> "google", "l.facebook.com" -> "facebook", "t.co" -> "twitter".
  if (host == "t.co" || within(host, "x.com")) return "twitter";
  if (host == "lnkd.in") return "linkedin";
  if (within(host, "youtu.be")) return "youtube";
  std::string best;
  std::size_t pos = 0;
  while (pos <= host.size()) {
    const auto dot = host.find('.', pos);
    const std::string label = host.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (is_search_engine(label) || is_social_network(label)) return label;
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return host;
}

}  // namespace

Touch extract_touch(const PageviewFacts& pv, const SiteRules& rules) {
  Touch t;
  t.at = pv.at;
  t.browser = pv.browser;
  t.os = pv.os;
  t.device_class = pv.device_class;
  t.country = pv.country;
  const Parsed url = parse(pv.url);
  t.landing_path = url.path.empty() ? "/" : url.path;
  if (const auto* v = param(url, "utm_source")) t.source = lower(trim(*v));
  if (const auto* v = param(url, "utm_medium")) t.medium = lower(trim(*v));
  if (const auto* v = param(url, "utm_campaign")) t.campaign = trim(*v);
  if (const auto* v = param(url, "utm_term")) t.term = trim(*v);
  if (const auto* v = param(url, "utm_content")) t.content = trim(*v);
  const ClickId* click = nullptr;
  for (const auto& c : kClickIds) {
    if (param(url, c.param) != nullptr) {
      click = &c;
      t.click_id = std::string(c.param);
      break;
    }
  }
  const std::string* affiliate = nullptr;
  for (const auto& name : rules.affiliate_params) {
    if ((affiliate = param(url, lower(name))) != nullptr) break;
  }
  if (!pv.referrer.empty()) {
    const Parsed ref = parse(pv.referrer);
    bool internal = ref.host.empty() || ref.host == url.host;
    for (const auto& own : rules.own_domains) internal = internal || within(ref.host, strip_www(own));
    if (!internal) t.referrer = ref.host;
  }
  if (t.source.empty()) {
    if (click != nullptr) {
      t.source = std::string(click->source);
      if (t.medium.empty()) t.medium = std::string(click->medium);
    } else if (affiliate != nullptr) {
      t.source = lower(trim(*affiliate));
      if (t.medium.empty()) t.medium = "affiliate";
    } else if (!t.referrer.empty()) {
      t.source = source_of_host(t.referrer);
      if (t.medium.empty()) {
        t.medium = is_search_engine(t.source) ? "organic"
                   : is_social_network(t.source) ? "social"
                                                 : "referral";
      }
    }
  }
  t.channel = std::string(classify_channel(t));
  return t;
}

bool is_direct(const Touch& t) {
  return t.source.empty() && t.medium.empty() && t.campaign.empty() && t.click_id.empty() &&
         t.referrer.empty();
}

bool same_source(const Touch& a, const Touch& b) {
  return a.source == b.source && a.medium == b.medium && a.campaign == b.campaign &&
         a.term == b.term && a.content == b.content && a.click_id == b.click_id &&
         a.referrer == b.referrer;
}

}  // namespace revtrace::domain
