#pragma once
// Per-site read models built from attributed-revenue records. Each payment's newest revision is
// applied idempotently: the previous revision's contributions are retracted, the new ones added,
// and older or repeated revisions are ignored — so re-consuming the topic from the beginning
// rebuilds exactly the same models.
//
// Layout (RocksDB, one database; parts separated by \x1f; inside a part \x1f and \x1e are escaped
// as \x1e followed by the byte + 0x40, so no value, however odd, can shift the parts of a key):
//   p|site|payment                         latest record of a payment (payment detail)
//   t|site|mode|day|paid_at|payment        time index (payment lists, filtered queries)
//   d|site|mode|model|dim|day|cur|value    "revenue,net,payments" per UTC day (breakdowns)
//   s|site|day|channel|source|campaign|cur  live ad spend (minor units), latest value wins
//   st|site|day|channel|source|campaign|cur test-mode ad spend (entries marked livemode=false)
//   o|topic|partition                      next offset to consume (written in the same batch as
//                                          the record's changes, so models and position agree)
// Unfiltered breakdowns and time series read the day aggregates; queries with filters scan the
// time index of the date range and recompute from the records with the same code.
#include <rocksdb/db.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "projections/ad_spend.hpp"

namespace revtrace::projections {

// Dimensions a breakdown can group or filter by. Touch dimensions split a payment by model
// credits; payment dimensions (method, all) take the whole amount.
[[nodiscard]] const std::vector<std::string_view>& group_by_dimensions();
[[nodiscard]] const std::vector<std::string_view>& model_names();
[[nodiscard]] bool is_touch_dimension(std::string_view dim);
// Dimensions ad spend carries (channel, source, campaign): the only ones ROAS can group or
// filter by. Spend knows nothing of a country or a device, so dividing a country's revenue by
// spend would divide by money that was not spent on that country.
[[nodiscard]] bool is_spend_dimension(std::string_view dim);

struct BreakdownRow {
  std::string key;       // dimension value, or the day for time series
  std::string currency;
  std::int64_t revenue = 0;  // credited gross amount, minor units
  std::int64_t net = 0;      // credited net of refunds
  std::int64_t payments = 0;
};

struct RoasRow {
  std::string key;
  std::string currency;
  std::int64_t spend = 0;
  std::int64_t revenue = 0;
  std::int64_t net = 0;
  std::int64_t payments = 0;
  std::int64_t customers = 0;  // distinct paying customers credited (customer, email or visitor)
};

struct BreakdownQuery {
  std::string site;
  bool livemode = true;
  std::string model = "last_touch";
  std::string group_by = "channel";
  std::string currency;  // empty = all
  std::string from_day;  // YYYY-MM-DD inclusive, empty = unbounded
  std::string to_day;    // YYYY-MM-DD inclusive, empty = unbounded
  std::vector<std::pair<std::string, std::string>> filters;  // (dimension, value)
};

// Where a record came from. Each write stores the next offset of its partition in the same
// atomic batch, so after a crash the read models resume exactly where they stopped, and
// dropping the read models (an empty directory) makes the query side re-consume from offset 0.
struct TopicPosition {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
};

struct PaymentPage {
  std::vector<std::string> records;  // attributed-revenue JSON, newest first
  std::string next_cursor;           // empty = no more
};

// "YYYY-MM-DD" of a Unix-ms instant in UTC.
[[nodiscard]] std::string utc_day(std::int64_t unix_ms);
[[nodiscard]] bool valid_day(std::string_view day);

class ReadModels {
 public:
  explicit ReadModels(const std::string& dir);
  // Drops every read model in `dir` (the next open starts empty, so the query side re-consumes
  // its topics from offset 0). Throws when the directory is in use by a running query side
  // (RocksDB's lock) or cannot be removed.
  static void drop(const std::string& dir);
  // Applies one attributed-revenue record; returns false with `error` when it is malformed (the
  // position still advances: a malformed record is skipped, never retried forever).
  [[nodiscard]] bool apply(std::string_view record, std::string& error,
                           const std::optional<TopicPosition>& position = std::nullopt);
  // A tombstone (null value) for key "<site>/<payment_key>": the payment key was merged into
  // another payment; its contributions are retracted and it disappears.
  void retire(std::string_view key, const std::optional<TopicPosition>& position = std::nullopt);
  // Advances the stored position past a record that changes nothing (e.g. malformed ad spend).
  void skip(const TopicPosition& position);
  // The next offset to consume of a partition, nullopt when nothing of it was applied yet.
  [[nodiscard]] std::optional<std::int64_t> next_offset(const std::string& topic,
                                                        std::int32_t partition) const;
  // Every read-model entry (not the positions) in key order, "key=value" per entry: two read
  // models hold the same answers exactly when their dumps are equal (rebuild tests).
  [[nodiscard]] std::vector<std::string> dump() const;
  [[nodiscard]] std::vector<BreakdownRow> breakdown(const BreakdownQuery& q) const;
  // Revenue per UTC day (group_by is ignored; filters apply).
  [[nodiscard]] std::vector<BreakdownRow> timeseries(const BreakdownQuery& q) const;
  [[nodiscard]] PaymentPage payments(const BreakdownQuery& q, std::size_t limit,
                                     const std::string& cursor) const;
  [[nodiscard]] std::optional<std::string> payment(const std::string& site,
                                                   const std::string& payment_key) const;
  // Ad spend: the latest entry per (site, mode, day, channel, source, campaign, currency) wins.
  void apply_spend(const AdSpendEntry& entry,
                   const std::optional<TopicPosition>& position = std::nullopt);
  // Spend of the query's mode (live spend for livemode=true, spend explicitly marked as test for
  // livemode=false) in its date range and currency, restricted by its filters, grouped by
  // q.group_by, per currency; rows carry the spend in `revenue`. An empty channel, source or
  // campaign of an entry is the value "(none)", for grouping and filtering alike. group_by and
  // every filter must be spend dimensions (is_spend_dimension): anything else throws
  // std::invalid_argument (the query API refuses such queries with a 400 first).
  [[nodiscard]] std::vector<BreakdownRow> spend(const BreakdownQuery& q) const;
  // Spend against credited revenue per channel, source or campaign (q.group_by) and currency:
  // the same mode, range, currency and filters on both sides. Preconditions as for spend().
  [[nodiscard]] std::vector<RoasRow> roas(const BreakdownQuery& q) const;

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace revtrace::projections
