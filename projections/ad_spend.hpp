#pragma once
// Ad spend: what a site paid per day, channel, source, campaign and currency. Entries arrive as
// JSON (PUT /v1/sites/{site}/ad-spend) or CSV (`revtrace ad-spend import`), are appended to the
// compacted revtrace.ad-spend.v1 topic keyed by site|day|channel|source|campaign|currency — the
// latest value per key wins — and are read back into the query side's read models for ROAS.
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

  [[nodiscard]] std::string key() const;
  [[nodiscard]] std::string to_json() const;
};

struct AdSpendParse {
  std::vector<AdSpendEntry> entries;
  std::string error;  // empty when every entry is valid; names the entry and field otherwise
};

// `{"entries":[...]}` or a bare array of {day, channel, source, campaign, amount, currency}.
[[nodiscard]] AdSpendParse parse_ad_spend_json(std::string_view body, const std::string& site,
                                               std::int64_t now_ms);
// CSV with a header naming day, channel, source, campaign, amount, currency (any order).
[[nodiscard]] AdSpendParse parse_ad_spend_csv(std::string_view text, const std::string& site,
                                              std::int64_t now_ms);
// A record of the ad-spend topic.
[[nodiscard]] std::optional<AdSpendEntry> parse_ad_spend_record(std::string_view record);

}  // namespace revtrace::projections
