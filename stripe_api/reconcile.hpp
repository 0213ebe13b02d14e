#pragma once
// Missed-webhook reconciliation (issue 8): Stripe objects listed through the API → synthetic
// Stripe events for revtrace.stripe-events.v1 (record `source: "api"`), for whatever the webhook
// path never delivered.
//
// Which event an object stands for, and its identity:
// - checkout session with status complete → checkout.session.completed;
// - charge succeeded and captured → charge.succeeded, or charge.refunded when
//   amount_refunded > 0 (the snapshot carries the cumulative refund); an authorisation not yet
//   captured moved no money and stands for nothing;
// - invoice with status paid → invoice.paid;
// - a refund created in the window → its charge, retrieved, as charge.refunded.
// A *change key* names the change an event reports: `checkout.session/<id>/<paid|unpaid>`,
// `charge/<id>/<captured amount>/<amount_refunded>` (captured amount 0 for an authorisation, so
// a delivered uncaptured charge.succeeded does not hide its capture), `invoice/<id>/paid`. The
// synthetic event id is `evt_rtapi_` + 24 hex digits of SHA-256(change key): repeated
// reconciles produce the same ids, and a change already delivered — by a webhook event of any
// id, or an earlier reconcile — is recognised by its change key (delivered_change_key) and not
// appended again.
//
// Objects are requested under the fixed API version kReconcileApiVersion (2025-02-24.acacia,
// the last before basil) because that shape links a charge to its invoice (`charge.invoice`):
// under basil a listed subscription charge could not be tied to its invoice and would count as
// a payment of its own (processor/domain/ENGINE.md, "known limits").
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stripe_api/client.hpp"

namespace revtrace::stripe_api {

inline constexpr std::string_view kReconcileApiVersion = "2025-02-24.acacia";

struct SyntheticEvent {
  std::string change_key;
  std::string event_id;  // evt_rtapi_...
  std::string type;
  std::string object_id;
  std::int64_t created = 0;  // Unix seconds: the time the object itself shows (see README)
  bool livemode = false;
  std::string payload;  // the Stripe event JSON
};

// The event an API object stands for; nullopt (with `why`) when it stands for none (an open
// session, a failed charge, an unpaid invoice) or is malformed. `kind` is Stripe's `object` name:
// "checkout.session", "charge", "invoice".
[[nodiscard]] std::optional<SyntheticEvent> synthesize_event(std::string_view kind,
                                                             std::string_view object_json,
                                                             std::string_view api_version,
                                                             std::string& why);

// The change key of a revtrace.stripe-events.v1 record (webhook or api); nullopt for event
// types reconciliation never produces, or a record that cannot be read.
[[nodiscard]] std::optional<std::string> delivered_change_key(std::string_view record_json);

// The revtrace.stripe-events.v1 record of a synthetic event.
[[nodiscard]] std::string stripe_events_record(std::string_view site_id, const SyntheticEvent& e,
                                               std::string_view api_version,
                                               std::int64_t received_at_ms);

// How far before the window an invoice paid in it may have been created. Stripe's list of
// invoices filters by creation only (`created`, no filter on status_transitions.paid_at), and an
// invoice is often paid long after it is created: send_invoice invoices are due 30 days after
// finalisation by default, failed subscription payments are retried for up to two months. So
// invoices are listed by creation from `since - invoice_lookback` and kept when their
// `status_transitions.paid_at` is in the window; an invoice created even earlier is still found
// when a charge of the window names it (`charge.invoice`, kReconcileApiVersion).
inline constexpr std::int64_t kInvoiceCreationLookback = 62 * 86400;

struct ReconcileWindow {
  std::int64_t since = 0;  // Unix seconds, inclusive
  std::int64_t until = 0;  // Unix seconds, exclusive; 0 = now
  std::int64_t invoice_lookback = kInvoiceCreationLookback;  // seconds, see above
};

struct FetchOutcome {
  std::vector<SyntheticEvent> events;    // one per change, newest first per kind
  std::map<std::string, std::size_t> listed;  // objects listed per endpoint
  std::size_t requests = 0;
  std::size_t skipped = 0;               // objects that stand for no event
  std::string error;                     // non-empty: the fetch failed (described)
  ApiError api;                          // the failing call's error
};

// Lists (paginated) checkout sessions, charges and refunds created in the window, invoices paid
// in it (created since `since - invoice_lookback`, kept by status_transitions.paid_at, plus any
// invoice a listed charge names that the listing did not show, retrieved), and returns the
// events they stand for, each change once.
[[nodiscard]] FetchOutcome fetch_reconcile_events(const StripeClient& client,
                                                  const ReconcileWindow& window);

}  // namespace revtrace::stripe_api
