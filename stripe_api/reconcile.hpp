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
// - a refund created in the window → its charge (listed, or retrieved) as charge.refunded.
// Which objects changed in the window, and so are reconciled: see kEvidenceEventTypes.
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
#include <array>
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

// How far before the window an object changed in it may have been created. Stripe's lists filter
// by creation only (`created`), and a payment object often changes long after its creation:
// - an invoice: send_invoice invoices are due 30 days after finalisation by default, failed
//   subscription payments are retried for up to two months. Invoices are listed by creation from
//   `since - invoice_lookback` and kept when their `status_transitions.paid_at` is in the window.
// - a Checkout Session completes at most 24 h after its creation (`expires_at` is 30 min to 24 h
//   after creation, 24 h by default).
// - a charge is captured at most 7 days after its authorisation (its `created`): Stripe's default
//   validity of a card authorisation (customer-initiated; 5 days for Visa merchant-initiated).
inline constexpr std::int64_t kInvoiceCreationLookback = 62 * 86400;
inline constexpr std::int64_t kSessionCompletionLookback = 24 * 3600;
inline constexpr std::int64_t kCaptureLookback = 7 * 86400;
// Stripe lists events going back up to 30 days.
inline constexpr std::int64_t kEventRetention = 30 * 86400;

struct ReconcileWindow {
  std::int64_t since = 0;  // Unix seconds, inclusive
  std::int64_t until = 0;  // Unix seconds, exclusive; 0 = now
  std::int64_t invoice_lookback = kInvoiceCreationLookback;    // seconds, see above
  std::int64_t session_lookback = kSessionCompletionLookback;  // seconds, see above
  std::int64_t charge_lookback = kCaptureLookback;             // seconds, see above
  std::int64_t now = 0;  // Unix seconds (decides whether events still cover `since`); 0 = clock
};

// Which objects created before the window changed in it. The object itself cannot say: a session
// has no completion time, a charge no capture time. Stripe's events can: `GET /v1/events` of the
// types checkout.session.completed / .async_payment_succeeded, charge.captured and invoice.paid
// created in the window names every session completed (or paid late), charge captured and invoice
// paid in it. The events are the clock only: the objects they name are read from the listings (or
// retrieved) under kReconcileApiVersion, since an event's object has the shape of the API version
// it was created with.
// Events are *complete* when Stripe answered the listing and `since` is within its 30-day
// retention. Then an object created before the window is kept only when an event, or a refund of
// the window, names it. When they are not complete (the key lacks the Events read permission:
// 403; or `since` is older than 30 days), an object created before the window is kept when it
// could have changed in it: a session whose `expires_at` is not before `since`, a manually
// captured charge whose `payment_method_details.card.capture_before` is not before `since` (an
// automatically captured charge was captured when created). Keeping one that changed before the
// window is harmless: it is appended only when the topic does not show it (delivered_scan_start).
inline constexpr std::array<std::string_view, 4> kEvidenceEventTypes{
    "checkout.session.completed", "checkout.session.async_payment_succeeded", "charge.captured",
    "invoice.paid"};

struct FetchOutcome {
  std::vector<SyntheticEvent> events;    // one per change
  std::map<std::string, std::size_t> listed;  // objects listed per endpoint
  std::size_t requests = 0;
  std::size_t skipped = 0;               // objects that stand for no event of the window
  bool events_complete = false;          // see kEvidenceEventTypes
  std::vector<std::string> warnings;     // why events are not complete
  std::string error;                     // non-empty: the fetch failed (described)
  ApiError api;                          // the failing call's error
};

// Lists (paginated) the evidence events of the window, then refunds created in it, checkout
// sessions (status complete) and charges created since `since - session_lookback` and
// `since - charge_lookback`, and paid invoices created since `since - invoice_lookback`; keeps
// what changed in the window (above); retrieves what an event, a refund or a kept charge
// (`charge.invoice`) names that no listing showed — a charge captured after an extended
// authorisation, a session paid late by a bank debit, an invoice created even earlier (paid
// from the customer's balance too) — and returns the events they stand for, each change once.
// Requests, in order: /v1/events, /v1/refunds, /v1/checkout/sessions, /v1/charges,
// /v1/invoices, then the retrievals (charges, invoices, sessions; each by id).
[[nodiscard]] FetchOutcome fetch_reconcile_events(const StripeClient& client,
                                                  const ReconcileWindow& window);

// The first receive time (Unix seconds) from which revtrace.stripe-events.v1 must be read to see
// every delivery of a change fetch_reconcile_events can return for `window`: a change of the
// window was delivered at or after `since`; one kept only because it could have changed in the
// window belongs to an object created at or after `since` minus the longer of the session and
// charge look-backs, and was delivered after that. One hour more for clock skew between Stripe
// and the gateway, which stamps records when it receives them. (Invoices are kept by `paid_at`,
// in the window: their 62-day look-back does not widen the scan.)
[[nodiscard]] std::int64_t delivered_scan_start(const ReconcileWindow& window) noexcept;

}  // namespace revtrace::stripe_api
