// Touch extraction: UTMs, encoded values, click-id inference, affiliate parameters, referrers
// (own domains, same host, www, known hosts, Android apps, payment pages), malformed URLs.
#include "processor/domain/touch.hpp"

#include <catch2/catch.hpp>
#include <random>

#include "processor/domain/channels.hpp"

using namespace revtrace::domain;

namespace {

struct Row {
  const char* name;
  const char* url;
  const char* referrer;
  // expected
  const char* source;
  const char* medium;
  const char* campaign;
  const char* term;
  const char* content;
  const char* click_id;
  const char* referrer_host;
  const char* landing_path;
  const char* channel;
};

const SiteRules kShopRules{.own_domains = {"shop.example", "WWW.Checkout-Partner.example"}};

// clang-format off
const Row kRows[] = {
  {"all five UTMs; source/medium lower-cased, campaign/term/content kept",
   "https://shop.example/pricing?utm_source=Newsletter&utm_medium=Email&utm_campaign=Spring_Sale&utm_term=Shoes&utm_content=Hero",
   "", "newsletter", "email", "Spring_Sale", "Shoes", "Hero", "", "", "/pricing", "Email"},
  {"percent-encoding and + in query values",
   "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=black%20friday+2025&utm_term=caf%C3%A9%2Bcr%C3%A8me",
   "", "google", "cpc", "black friday 2025", "café+crème", "", "", "", "/", "Paid Search"},
  {"parameter names are case-insensitive",
   "https://shop.example/?UTM_SOURCE=Bing&Utm_Medium=CPC",
   "", "bing", "cpc", "", "", "", "", "", "/", "Paid Search"},
  {"values are trimmed",
   "https://shop.example/?utm_source=%20Google%20&utm_medium=+organic+",
   "", "google", "organic", "", "", "", "", "", "/", "Organic Search"},
  {"an empty value is absent; a later non-empty one counts",
   "https://shop.example/?utm_source=&utm_source=Partner&gclid=",
   "", "partner", "", "", "", "", "", "", "/", "Other"},
  {"decoded landing path",
   "https://shop.example/caf%C3%A9/men%C3%BC?x=1#top",
   "", "", "", "", "", "", "", "", "/café/menü", "Direct"},
  {"no path is /",
   "https://shop.example?utm_source=newsletter",
   "", "newsletter", "", "", "", "", "", "", "/", "Email"},
  {"port and user info do not disturb",
   "https://user:pw@shop.example:8443/p?utm_source=partner&utm_medium=referral",
   "", "partner", "referral", "", "", "", "", "", "/p", "Referral"},
  // Click ids
  {"gclid alone: google / cpc",
   "https://shop.example/?gclid=Cj0KCQabc", "", "google", "cpc", "", "", "", "gclid", "", "/", "Paid Search"},
  {"gbraid alone", "https://shop.example/?gbraid=0AAA", "", "google", "cpc", "", "", "", "gbraid", "", "/", "Paid Search"},
  {"wbraid alone", "https://shop.example/?wbraid=ClkK", "", "google", "cpc", "", "", "", "wbraid", "", "/", "Paid Search"},
  {"msclkid alone: bing / cpc", "https://shop.example/?msclkid=3f2a", "", "bing", "cpc", "", "", "", "msclkid", "", "/", "Paid Search"},
  {"ttclid alone: tiktok", "https://shop.example/?ttclid=E.C.P", "", "tiktok", "cpc", "", "", "", "ttclid", "", "/", "Paid Social"},
  {"li_fat_id alone: linkedin", "https://shop.example/?li_fat_id=9c1e", "", "linkedin", "cpc", "", "", "", "li_fat_id", "", "/", "Paid Social"},
  {"twclid alone: twitter", "https://shop.example/?twclid=2-abc", "", "twitter", "cpc", "", "", "", "twclid", "", "/", "Paid Social"},
  {"fbclid alone is organic (Meta tags organic links too)",
   "https://shop.example/?fbclid=IwAR0abc", "https://l.facebook.com/", "facebook", "social", "", "", "", "fbclid", "l.facebook.com", "/", "Organic Social"},
  {"fbclid with paid UTMs is Paid Social",
   "https://shop.example/?utm_source=facebook&utm_medium=paid_social&utm_campaign=retargeting&fbclid=IwAR0",
   "", "facebook", "paid_social", "retargeting", "", "", "fbclid", "", "/", "Paid Social"},
  {"UTM source kept, missing medium filled from the click id",
   "https://shop.example/?utm_source=google&utm_campaign=brand&gclid=abc", "", "google", "cpc", "brand", "", "", "gclid", "", "/", "Paid Search"},
  {"two click ids: the first of the priority list (gclid before msclkid)",
   "https://shop.example/?msclkid=1&gclid=2", "", "google", "cpc", "", "", "", "gclid", "", "/", "Paid Search"},
  {"click id beats the referrer's source",
   "https://shop.example/?gclid=abc", "https://www.google.com/", "google", "cpc", "", "", "", "gclid", "google.com", "/", "Paid Search"},
  // Affiliate parameters
  {"ref=: source = partner (lower-cased), medium affiliate",
   "https://shop.example/?ref=Partner42", "", "partner42", "affiliate", "", "", "", "", "", "/", "Affiliate"},
  {"via= with a referrer: the affiliate names the source",
   "https://shop.example/?via=bob", "https://bobs-blog.example/", "bob", "affiliate", "", "", "", "", "bobs-blog.example", "/", "Affiliate"},
  {"affiliate parameter under UTMs: UTMs win, medium filled",
   "https://shop.example/?utm_source=partnerstack&ref=alice", "", "partnerstack", "affiliate", "", "", "", "", "", "/", "Affiliate"},
  {"affiliate parameter with a UTM medium: the medium stays",
   "https://shop.example/?utm_source=newsletter&utm_medium=email&via=bob", "", "newsletter", "email", "", "", "", "", "", "/", "Email"},
  {"an affiliate link shared on Facebook credits the affiliate",
   "https://shop.example/?aff=carol&fbclid=IwAR", "", "carol", "affiliate", "", "", "", "fbclid", "", "/", "Affiliate"},
  {"an ad click id beats an affiliate parameter",
   "https://shop.example/?ref=carol&gclid=abc", "", "google", "cpc", "", "", "", "gclid", "", "/", "Paid Search"},
  // Referrers
  {"own domain subdomain is internal",
   "https://shop.example/cart", "https://blog.shop.example/post", "", "", "", "", "", "", "", "/cart", "Direct"},
  {"own domain listed with www and capitals",
   "https://shop.example/", "https://checkout-partner.example/done", "", "", "", "", "", "", "", "/", "Direct"},
  {"same host (www stripped on both sides) is internal",
   "https://www.acme.io/x", "https://acme.io/", "", "", "", "", "", "", "", "/x", "Direct"},
  {"a look-alike of an own domain is external",
   "https://shop.example/", "https://notshop.example/", "notshop.example", "referral", "", "", "", "", "notshop.example", "/", "Referral"},
  {"www stripped, known social network",
   "https://shop.example/", "https://www.producthunt.com/posts/x", "producthunt", "social", "", "", "", "", "producthunt.com", "/", "Organic Social"},
  {"search engine under a country suffix",
   "https://shop.example/", "https://www.google.co.uk/", "google", "organic", "", "", "", "", "google.co.uk", "/", "Organic Search"},
  {"duckduckgo", "https://shop.example/", "https://duckduckgo.com/", "duckduckgo", "organic", "", "", "", "", "duckduckgo.com", "/", "Organic Search"},
  {"unknown site: host / referral",
   "https://shop.example/", "https://News.Example.org/a?b=c", "news.example.org", "referral", "", "", "", "", "news.example.org", "/", "Referral"},
  {"a listed word inside an unrelated host is not that network",
   "https://shop.example/", "https://google.example.com/", "google.example.com", "referral", "", "", "", "", "google.example.com", "/", "Referral"},
  {"t.co is twitter", "https://shop.example/", "https://t.co/", "twitter", "social", "", "", "", "", "t.co", "/", "Organic Social"},
  {"x.com is twitter", "https://shop.example/", "https://x.com/someone", "twitter", "social", "", "", "", "", "x.com", "/", "Organic Social"},
  {"Gmail web is Email, not Google Search",
   "https://shop.example/", "https://mail.google.com/", "gmail", "email", "", "", "", "", "mail.google.com", "/", "Email"},
  {"Android Gmail app", "https://shop.example/", "android-app://com.google.android.gm/", "gmail", "email", "", "", "", "", "com.google.android.gm", "/", "Email"},
  {"Android Google app", "https://shop.example/", "android-app://com.google.android.googlequicksearchbox/", "google", "organic", "", "", "", "", "com.google.android.googlequicksearchbox", "/", "Organic Search"},
  {"returning from Stripe Checkout is not a source",
   "https://shop.example/thanks?session_id=cs_test_1", "https://checkout.stripe.com/c/pay/cs_test_1", "", "", "", "", "", "", "", "/thanks", "Direct"},
  {"returning from Google sign-in is not a source",
   "https://shop.example/app", "https://accounts.google.com/", "", "", "", "", "", "", "", "/app", "Direct"},
  {"UTMs plus referrer: UTMs name the source, referrer host kept",
   "https://shop.example/?utm_source=newsletter&utm_medium=email", "https://mail.google.com/", "newsletter", "email", "", "", "", "", "mail.google.com", "/", "Email"},
  {"UTM medium without source: source from the referrer",
   "https://shop.example/?utm_medium=cpc", "https://www.bing.com/", "bing", "cpc", "", "", "", "", "bing.com", "/", "Paid Search"},
  {"referrer host trailing dot", "https://shop.example/", "https://www.bing.com./search", "bing", "organic", "", "", "", "", "bing.com", "/", "Organic Search"},
  // Malformed and odd input
  {"space and bad escape: lenient parse keeps what can be had",
   "https://shop.example/landing page?utm_source=news letter&utm_campaign=50%off&utm_medium=email",
   "", "news letter", "email", "50%off", "", "", "", "", "/landing page", "Email"},
  {"invalid UTF-8 and a NUL are cleaned",
   "https://shop.example/?utm_source=a&utm_campaign=%FFsale%00", "", "a", "", "\xEF\xBF\xBDsale", "", "", "", "", "/", "Other"},
  {"scheme-less URL is read host-first",
   "shop.example/pricing?utm_source=podcast", "", "podcast", "", "", "", "", "", "", "/pricing", "Other"},
  {"relative URL", "/docs?utm_source=github&utm_medium=referral", "", "github", "referral", "", "", "", "", "", "/docs", "Referral"},
  {"garbage URL", "%%%::??&&==", "", "", "", "", "", "", "", "", "", "Direct"},
  {"garbage referrer is no referrer", "https://shop.example/", "not a url at all", "", "", "", "", "", "", "", "/", "Direct"},
  {"bad port in referrer: host still read", "https://shop.example/", "https://www.bing.com:abc/", "bing", "organic", "", "", "", "", "bing.com", "/", "Organic Search"},
  {"empty URL and referrer", "", "", "", "", "", "", "", "", "", "", "Direct"},
};
// clang-format on

}  // namespace

TEST_CASE("extract_touch: table", "[touch]") {
  const Row& row = GENERATE(from_range(std::begin(kRows), std::end(kRows)));
  INFO(row.name);
  INFO("url: " << row.url << "  referrer: " << row.referrer);
  Touch t;
  REQUIRE_NOTHROW(t = extract_touch(PageviewFacts{row.url, row.referrer, 1000}, kShopRules));
  CHECK(t.source == row.source);
  CHECK(t.medium == row.medium);
  CHECK(t.campaign == row.campaign);
  CHECK(t.term == row.term);
  CHECK(t.content == row.content);
  CHECK(t.click_id == row.click_id);
  CHECK(t.referrer == row.referrer_host);
  CHECK(t.landing_path == row.landing_path);
  CHECK(t.channel == row.channel);
  CHECK(t.channel == classify_channel(t));
  CHECK(is_direct(t) == (t.channel == "Direct"));
  CHECK(t.at == 1000);
}

TEST_CASE("extract_touch copies time, device and country", "[touch]") {
  const auto t = extract_touch(
      PageviewFacts{"https://shop.example/", "", 1744000000000, "Firefox", "Linux", "desktop", "DE"},
      kShopRules);
  CHECK(t.at == 1744000000000);
  CHECK(t.browser == "Firefox");
  CHECK(t.os == "Linux");
  CHECK(t.device_class == "desktop");
  CHECK(t.country == "DE");
  CHECK(t.channel == "Direct");
}

TEST_CASE("extract_touch: configured affiliate parameter names", "[touch]") {
  const SiteRules rules{.own_domains = {"shop.example"}, .affiliate_params = {"Partner", "rd_ref"}};
  const auto partner = extract_touch(PageviewFacts{"https://shop.example/?PARTNER=Acme"}, rules);
  CHECK(partner.source == "acme");
  CHECK(partner.medium == "affiliate");
  CHECK(partner.channel == "Affiliate");
  // "ref" is only an affiliate parameter when configured.
  const auto ref = extract_touch(PageviewFacts{"https://shop.example/?ref=producthunt"}, rules);
  CHECK(is_direct(ref));
  CHECK(ref.channel == "Direct");
  // An empty list: no affiliate parameters at all.
  const SiteRules none{.own_domains = {}, .affiliate_params = {}};
  CHECK(is_direct(extract_touch(PageviewFacts{"https://shop.example/?ref=x"}, none)));
}

TEST_CASE("extract_touch: ignored referrers are configurable", "[touch]") {
  SiteRules rules{.own_domains = {"shop.example"}};
  rules.ignored_referrers = {"pay.example-psp.com"};
  const auto psp = extract_touch(
      PageviewFacts{"https://shop.example/thanks", "https://secure.pay.example-psp.com/3ds"}, rules);
  CHECK(psp.channel == "Direct");
  // Without stripe.com in the list, Stripe is an ordinary referrer.
  const auto stripe = extract_touch(
      PageviewFacts{"https://shop.example/thanks", "https://checkout.stripe.com/c/pay"}, rules);
  CHECK(stripe.referrer == "checkout.stripe.com");
  CHECK(stripe.channel == "Referral");
}

TEST_CASE("extract_touch never throws on hostile input", "[touch]") {
  const std::string long_value(100000, 'a');
  const std::vector<std::string> inputs{
      "",           "?",          "#",           "://",         "http://",    "http://[::1",
      "%",          "%%",         "%2",          "a=b&&&=&",    "?=&=&utm_source",
      std::string("https://shop.example/?utm_source=") + '\0' + "x", "https://shop.example/?utm_campaign=" + long_value,
      "\xFF\xFE\xFD", "android-app://", "https://[::1]:80/?gclid=1", "http://a@b@c:1:2/?ref=%ZZ",
      "javascript:alert(1)", "data:text/html,<b>", "////", "?utm_source=%E2%82",
      // An empty query before a fragment, plain and with an escape (boostorg/url#864).
      "?#", "https://shop.example/?#top", "https://shop.example/caf%C3%A9?#top",
  };
  for (const auto& url : inputs) {
    for (const auto& ref : inputs) {
      INFO("url " << url << " referrer " << ref);
      Touch t;
      REQUIRE_NOTHROW(t = extract_touch(PageviewFacts{url, ref}, kShopRules));
      // Whatever came out is clean: valid UTF-8 was checked by construction; no control bytes.
      bool clean = true;
      for (const auto* s : {&t.source, &t.medium, &t.campaign, &t.term, &t.content,
                            &t.referrer, &t.landing_path}) {
        for (const char c : *s) clean = clean && static_cast<unsigned char>(c) >= 0x20;
      }
      CHECK(clean);
      CHECK(t.channel == classify_channel(t));
    }
  }
  const auto t = extract_touch(PageviewFacts{"?utm_source=%E2%82"}, kShopRules);
  CHECK(t.source == "\xEF\xBF\xBD\xEF\xBF\xBD");  // a truncated sequence: one U+FFFD per byte
}

TEST_CASE("is_direct and same_source", "[touch]") {
  Touch direct;
  CHECK(is_direct(direct));
  direct.landing_path = "/pricing";
  direct.browser = "Chrome";
  direct.at = 5;
  CHECK(is_direct(direct));  // path, device and time are not a source

  auto with = [](std::string Touch::*field) {
    Touch t;
    t.*field = "x";
    return t;
  };
  for (auto field : {&Touch::source, &Touch::medium, &Touch::campaign, &Touch::term,
                     &Touch::content, &Touch::click_id, &Touch::referrer}) {
    CHECK_FALSE(is_direct(with(field)));
  }

  Touch a;
  a.source = "newsletter";
  a.medium = "email";
  a.campaign = "spring";
  a.referrer = "mail.google.com";
  a.landing_path = "/a";
  a.at = 1;
  Touch b = a;
  b.referrer = "outlook.live.com";  // same campaign clicked in another mail client
  b.landing_path = "/b";
  b.at = 2;
  b.channel = "Email";
  CHECK(same_source(a, b));
  for (auto field : {&Touch::source, &Touch::medium, &Touch::campaign, &Touch::term,
                     &Touch::content, &Touch::click_id}) {
    Touch c = a;
    c.*field += "-other";
    CHECK_FALSE(same_source(a, c));
  }
}

TEST_CASE("plain URLs are read as Boost.URL reads them", "[touch]") {
  // Typical pixel URLs and referrers take the plain reading.
  for (const std::string_view url :
       {"https://shop.example/pricing?utm_source=Newsletter&utm_medium=Email",
        "https://shop.example", "https://shop.example?utm_source=a+b", "HTTPS://WWW.Shop.Example:8443/",
        "//shop.example/x?gclid=1&&=&ref", "https://shop.example/p?a=b=c&q=?/x#frag",
        "android-app://com.google.android.gm/", "https://shop.example/?", "https://:80/x",
        "http://127.0.0.1:8080/a;b/c:d?x=(1)*!$',~"}) {
    INFO(url);
    const auto agrees = detail::plain_url_reading_agrees(url);
    REQUIRE(agrees.has_value());
    CHECK(*agrees);
  }
  // Escapes, user info, IP literals, two fragments, a bad port, odd characters: the general
  // parser.
  for (const std::string_view url :
       {"https://shop.example/caf%C3%A9", "https://u:p@shop.example/", "https://[::1]/",
        "https://shop.example/#a#b", "https://shop.example:8a/", "https://shop.example/a b",
        "https://shop.example/?q=\"x\"", "shop.example/x", "/relative?utm_source=a",
        "https://sh\xC3\xB6p.example/"}) {
    INFO(url);
    CHECK_FALSE(detail::plain_url_reading_agrees(url).has_value());
  }
  // A generated corpus: every text the plain reading takes reads the same with Boost.URL.
  std::mt19937 rng(20261203);
  const std::string_view alphabet = "aZ09-._~!$&'()*+,;=:/?#%@[] \"<>^`{|}\\";
  const std::string_view pieces[] = {"https://", "http://", "//", "android-app://", "HTTP://",
                                     "shop.example", "www.", ":8443", ":", "/", "?", "&", "=",
                                     "#", "utm_source", "UTM_Medium", "+", "gclid", "..", ""};
  std::size_t plain = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string url(pieces[rng() % 5]);
    const int parts = static_cast<int>(rng() % 12);
    for (int k = 0; k < parts; ++k) {
      if (rng() % 3 == 0) {
        url += alphabet[rng() % alphabet.size()];
      } else {
        url += pieces[rng() % std::size(pieces)];
      }
    }
    const auto agrees = detail::plain_url_reading_agrees(url);
    if (!agrees) continue;
    ++plain;
    INFO(url);
    REQUIRE(*agrees);
  }
  CHECK(plain > 2000);  // the corpus exercises the plain reading, not only the fallback
}
