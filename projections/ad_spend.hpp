#pragma once
// Ad spend: what a site paid per day, channel, source, campaign and currency. Entries arrive as
// JSON (PUT /v1/sites/{site}/ad-spend) or CSV (`revtrace ad-spend import`), are appended to the
// compacted revtrace.ad-spend.v1 topic keyed by site|day|channel|source|campaign|currency — the
// latest value per key wins — and are read back into the query side's read models for ROAS.
//
// Spend is live money. An entry counts against test-mode revenue only when it says so
// (`"livemode": false`, for rehearsing the set-up with Stripe test payments); such entries have
// the key ...|currency|test, so they never replace the live entry of the same day and campaign.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace revtrace::projections {

struct AdSpendEntry {
  std::string site_id;
  std::string day;  // YYYY-MM-DD (UTC)
  std::string channel;
  std::string source;
  std::string campaign;
  std::int64_t amount = 0;  // minor units
  std::string currency;     // lower-case ISO 4217
  std::int64_t updated_at = 0;
  bool livemode = true;  // false: test-mode spend, set only by entries that say so

  [[nodiscard]] std::string key() const;
  [[nodiscard]] std::string to_json() const;
};

struct AdSpendParse {
  std::vector<AdSpendEntry> entries;
  std::string error;  // empty when every entry is valid; names the entry and field otherwise
};

// `{"entries":[...]}` or a bare array of {day, channel, source, campaign, amount, currency
// [, livemode]}; livemode is a boolean, true when absent.
[[nodiscard]] AdSpendParse parse_ad_spend_json(std::string_view body, const std::string& site,
                                               std::int64_t now_ms);
// CSV with a header naming day, channel, source, campaign, amount, currency (any order) and
// optionally livemode (true, false, or empty = true).
[[nodiscard]] AdSpendParse parse_ad_spend_csv(std::string_view text, const std::string& site,
                                              std::int64_t now_ms);
// A record of the ad-spend topic (a record without livemode is live spend, as every record
// written before the field existed).
[[nodiscard]] std::optional<AdSpendEntry> parse_ad_spend_record(std::string_view record);

}  // namespace revtrace::projections
