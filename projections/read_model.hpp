#pragma once
// Per-site read models built from attributed-revenue records. Each payment's newest revision is
// applied idempotently: the previous revision's contributions are retracted, the new ones added,
// and older or repeated revisions are ignored — so re-consuming the topic from the beginning
// rebuilds exactly the same models.
#include <rocksdb/db.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace revtrace::projections {

// Dimensions a breakdown can group by. Touch dimensions split a payment by model credits;
// payment dimensions (method, currency) take the whole amount.
[[nodiscard]] const std::vector<std::string_view>& group_by_dimensions();

struct BreakdownRow {
  std::string key;
  std::string currency;
  std::int64_t revenue = 0;  // credited gross amount, minor units
  std::int64_t net = 0;      // credited net of refunds
  std::int64_t payments = 0;
};

struct BreakdownQuery {
  std::string site;
  bool livemode = true;
  std::string model = "last_touch";
  std::string group_by = "channel";
  std::string currency;  // empty = all
};

class ReadModels {
 public:
  explicit ReadModels(const std::string& dir);
  // Applies one attributed-revenue record; returns false with `error` when it is malformed.
  [[nodiscard]] bool apply(std::string_view record, std::string& error);
  [[nodiscard]] std::vector<BreakdownRow> breakdown(const BreakdownQuery& q) const;

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace revtrace::projections
