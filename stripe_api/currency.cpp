#include "stripe_api/currency.hpp"

#include <algorithm>
#include <array>

namespace revtrace::stripe_api {

namespace {

// Active ISO 4217 codes (list one, 2024; funds codes and precious metals excluded: X.. codes that
// are not currencies, such as XAU or XDR, cannot be charged).
constexpr std::array<std::string_view, 158> kIso4217{
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "btn", "bwp", "byn", "bzd", "cad",
    "cdf", "chf", "clp", "cny", "cop", "crc", "cup", "cve", "czk", "djf", "dkk", "dop", "dzd",
    "egp", "ern", "etb", "eur", "fjd", "fkp", "gbp", "gel", "ghs", "gip", "gmd", "gnf", "gtq",
    "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "iqd", "irr", "isk", "jmd", "jod",
    "jpy", "kes", "kgs", "khr", "kmf", "kpw", "krw", "kwd", "kyd", "kzt", "lak", "lbp", "lkr",
    "lrd", "lsl", "lyd", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop", "mru", "mur", "mvr",
    "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "omr", "pab", "pen",
    "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub", "rwf", "sar", "sbd", "scr",
    "sdg", "sek", "sgd", "shp", "sle", "sos", "srd", "ssp", "stn", "svc", "syp", "szl", "thb",
    "tjs", "tmt", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs",
    "ves", "vnd", "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw", "zwl", "xcg",
    "ved", "zwg"};

constexpr std::array<std::string_view, 16> kZeroDecimal{"bif", "clp", "djf", "gnf", "jpy", "kmf",
                                                        "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                                                        "vuv", "xaf", "xof", "xpf"};
constexpr std::array<std::string_view, 5> kThreeDecimal{"bhd", "jod", "kwd", "omr", "tnd"};
constexpr std::array<std::string_view, 2> kMultipleOf100{"isk", "ugx"};
constexpr std::int64_t kMaxAmount = 99'999'999;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& list, std::string_view code) {
  return std::find(list.begin(), list.end(), code) != list.end();
}

}  // namespace

bool is_iso4217(std::string_view code) noexcept {
  if (code.size() != 3) return false;
  char buf[3];
  for (std::size_t i = 0; i < 3; ++i) {
    const char c = code[i];
    buf[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return contains(kIso4217, std::string_view(buf, 3));
}

int stripe_minor_digits(std::string_view code) noexcept {
  const auto c = lower(code);
  if (contains(kZeroDecimal, c)) return 0;
  if (contains(kThreeDecimal, c)) return 3;
  return 2;
}

CurrencyCheck check_amount(std::int64_t amount, std::string_view currency) {
  CurrencyCheck out;
  const auto code = lower(currency);
  if (!is_iso4217(code)) {
    out.error = "currency '" + std::string(currency) + "' is not an ISO 4217 currency code";
    return out;
  }
  const auto upper = [&] {
    std::string u = code;
    for (auto& c : u) c = static_cast<char>(c - 'a' + 'A');
    return u;
  }();
  if (amount <= 0) {
    out.error = "amount must be a positive integer in the currency's minor unit";
    return out;
  }
  if (amount > kMaxAmount) {
    out.error = "amount " + std::to_string(amount) + " exceeds Stripe's maximum of 99999999 " +
                upper + " minor units";
    return out;
  }
  if (contains(kThreeDecimal, code) && amount % 10 != 0) {
    out.error = upper + " is a three-decimal currency: the amount's last digit must be 0 (got " +
                std::to_string(amount) + ")";
    return out;
  }
  if (contains(kMultipleOf100, code) && amount % 100 != 0) {
    out.error = upper + " amounts are sent as two-decimal values and must be multiples of 100 (got " +
                std::to_string(amount) + ")";
    return out;
  }
  out.currency = code;
  return out;
}

}  // namespace revtrace::stripe_api
