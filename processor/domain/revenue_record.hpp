#pragma once
// The revtrace.attributed-revenue.v1 record (schemas/revtrace.attributed-revenue.v1.schema.json):
// a value type and its one rendering.
//
// The rendering is canonical — fixed field order, no whitespace, integers only, "unknown" as null,
// strings escaped one way — so two records with the same content are the same bytes, and the
// engine can tell "did this payment's result change?" by comparing bytes.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "processor/domain/models.hpp"
#include "processor/domain/touch.hpp"

namespace revtrace::domain {

struct RevenueRecord {
  std::string site_id;
  std::string payment_key;
  bool livemode = false;
  std::int64_t amount = 0;
  std::string currency;
  std::int64_t refunded = 0;
  Millis paid_at = 0;
  std::string method;
  // Stripe ids; empty renders as null.
  std::string checkout_session, payment_intent, charge, invoice, subscription, customer,
      payment_link;
  std::vector<std::string> visitor_ids;
  std::string email_hash;  // empty renders as null
  std::vector<Touch> touches;
  std::array<std::vector<std::int64_t>, kAllModels.size()> credits;  // in kAllModels order
};

// The record as JSON, with `revision`.
[[nodiscard]] std::string render(const RevenueRecord& r, std::int64_t revision);
// The same bytes without the "revision" member: what is compared to decide whether a new revision
// is due.
[[nodiscard]] std::string render_content(const RevenueRecord& r);

// JSON string literal (with quotes) for UTF-8 text.
void append_json_string(std::string& out, std::string_view s);

}  // namespace revtrace::domain
