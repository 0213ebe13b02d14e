#include "stripe_api/reconcile.hpp"

#include <openssl/sha.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "common/http.hpp"

namespace revtrace::stripe_api {

namespace {

std::string event_id_for(std::string_view change_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(change_key.data()), change_key.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "evt_rtapi_";
  for (int i = 0; i < 12; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string json_quoted(std::string_view s) {
  std::string out = "\"";
  common::http::append_json_escaped(out, s);
  out += '"';
  return out;
}

std::string_view str_or_empty(simdjson::simdjson_result<simdjson::dom::element> e) {
  std::string_view v;
  return e.get_string().get(v) == simdjson::SUCCESS ? v : std::string_view();
}

std::int64_t int_or(simdjson::simdjson_result<simdjson::dom::element> e, std::int64_t fallback) {
  std::int64_t v = 0;
  return e.get_int64().get(v) == simdjson::SUCCESS ? v : fallback;
}

// The money a charge snapshot shows as captured, by the processor's rule
// (processor/domain/stripe_event.cpp, read_charge): 0 while `captured` is false (an
// authorisation), else `amount_captured` when positive, else `amount` (older API versions).
std::int64_t captured_amount(const simdjson::dom::element& charge) {
  bool captured = true;
  if (charge["captured"].get_bool().get(captured) == simdjson::SUCCESS && !captured) return 0;
  const std::int64_t amount_captured = int_or(charge["amount_captured"], 0);
  return amount_captured > 0 ? amount_captured : int_or(charge["amount"], 0);
}

// `charge/<id>/<captured>/<refunded>`: a capture and each refund are changes of their own, so a
// delivered authorisation (captured 0) never hides a capture whose event was lost.
std::string charge_change_key(std::string_view id, const simdjson::dom::element& charge) {
  return "charge/" + std::string(id) + "/" + std::to_string(captured_amount(charge)) + "/" +
         std::to_string(int_or(charge["amount_refunded"], 0));
}

}  // namespace

std::optional<SyntheticEvent> synthesize_event(std::string_view kind, std::string_view object_json,
                                               std::string_view api_version, std::string& why) {
  simdjson::dom::parser parser;
  simdjson::dom::element obj;
  if (parser.parse(object_json.data(), object_json.size()).get(obj) || !obj.is_object()) {
    why = std::string(kind) + ": not a JSON object";
    return std::nullopt;
  }
  SyntheticEvent e;
  std::string_view id, object;
  if (obj["id"].get_string().get(id) || obj["object"].get_string().get(object) || object != kind) {
    why = std::string(kind) + ": missing id, or object is not " + std::string(kind);
    return std::nullopt;
  }
  e.object_id = std::string(id);
  bool livemode = false;
  if (obj["livemode"].get_bool().get(livemode) == simdjson::SUCCESS) e.livemode = livemode;
  const std::int64_t created = int_or(obj["created"], 0);
  const std::string_view status = str_or_empty(obj["status"]);
  if (kind == "checkout.session") {
    const std::string_view payment_status = str_or_empty(obj["payment_status"]);
    const std::string_view mode = str_or_empty(obj["mode"]);
    if (status != "complete" || mode == "setup") {
      why = e.object_id + ": session " + std::string(status) + " (" + std::string(mode) +
            ") is no completed payment";
      return std::nullopt;
    }
    e.type = "checkout.session.completed";
    e.change_key = "checkout.session/" + e.object_id + "/" +
                   (payment_status == "unpaid" ? "unpaid" : "paid");
    e.created = created;
  } else if (kind == "charge") {
    const std::int64_t refunded = int_or(obj["amount_refunded"], 0);
    if (status != "succeeded") {
      why = e.object_id + ": charge " + std::string(status) + " moved no money";
      return std::nullopt;
    }
    if (captured_amount(obj) == 0) {
      why = e.object_id + ": charge authorised, not captured: no money moved yet";
      return std::nullopt;
    }
    e.type = refunded > 0 ? "charge.refunded" : "charge.succeeded";
    e.change_key = charge_change_key(e.object_id, obj);
    e.created = created;
  } else if (kind == "invoice") {
    if (status != "paid") {
      why = e.object_id + ": invoice " + std::string(status) + " is not paid";
      return std::nullopt;
    }
    e.type = "invoice.paid";
    e.change_key = "invoice/" + e.object_id + "/paid";
    e.created = int_or(obj["status_transitions"]["paid_at"], created);
  } else {
    why = "unsupported object kind " + std::string(kind);
    return std::nullopt;
  }
  e.event_id = event_id_for(e.change_key);
  e.payload = "{\"id\":" + json_quoted(e.event_id) + ",\"object\":\"event\",\"api_version\":" +
              (api_version.empty() ? std::string("null") : json_quoted(api_version)) +
              ",\"created\":" + std::to_string(e.created) + ",\"data\":{\"object\":" +
              std::string(object_json) + "},\"livemode\":" + (e.livemode ? "true" : "false") +
              ",\"pending_webhooks\":0,\"request\":{\"id\":null,\"idempotency_key\":null},"
              "\"type\":" +
              json_quoted(e.type) + "}";
  return e;
}

std::optional<std::string> delivered_change_key(std::string_view record_json) {
  simdjson::dom::parser parser;
  simdjson::dom::element record;
  std::string_view payload;
  if (parser.parse(record_json.data(), record_json.size()).get(record) ||
      record["payload"].get_string().get(payload)) {
    return std::nullopt;
  }
  const std::string body(payload);  // the record's parser owns `payload`
  simdjson::dom::parser inner;
  simdjson::dom::element event;
  std::string_view type, id;
  if (inner.parse(body).get(event) || event["type"].get_string().get(type) ||
      event["data"]["object"]["id"].get_string().get(id)) {
    return std::nullopt;
  }
  simdjson::dom::element obj;
  if (event["data"]["object"].get(obj)) return std::nullopt;
  const std::string oid(id);
  if (type == "checkout.session.completed") {
    const std::string_view ps = str_or_empty(obj["payment_status"]);
    return "checkout.session/" + oid + "/" + (ps == "unpaid" ? "unpaid" : "paid");
  }
  if (type == "checkout.session.async_payment_succeeded") return "checkout.session/" + oid + "/paid";
  if (type == "charge.succeeded" || type == "charge.captured" || type == "charge.refunded") {
    return charge_change_key(oid, obj);
  }
  if (type == "invoice.paid" || type == "invoice.payment_succeeded") return "invoice/" + oid + "/paid";
  return std::nullopt;
}

std::string stripe_events_record(std::string_view site_id, const SyntheticEvent& e,
                                 std::string_view api_version, std::int64_t received_at_ms) {
  return "{\"site_id\":" + json_quoted(site_id) + ",\"source\":\"api\",\"received_at\":" +
         std::to_string(received_at_ms) + ",\"event_id\":" + json_quoted(e.event_id) +
         ",\"event_type\":" + json_quoted(e.type) + ",\"livemode\":" + (e.livemode ? "true" : "false") +
         ",\"api_version\":" + (api_version.empty() ? std::string("null") : json_quoted(api_version)) +
         ",\"created\":" + std::to_string(e.created) + ",\"payload\":" + json_quoted(e.payload) + "}";
}

std::int64_t delivered_scan_start(const ReconcileWindow& window) noexcept {
  const std::int64_t lookback =
      std::max<std::int64_t>({0, window.session_lookback, window.charge_lookback});
  return window.since - lookback - 3600;
}

FetchOutcome fetch_reconcile_events(const StripeClient& client, const ReconcileWindow& window) {
  FetchOutcome out;
  const std::string& version = client.options().stripe_version;
  const std::int64_t now =
      window.now > 0 ? window.now
                     : std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  auto created_from = [&](std::int64_t from) {
    Form range{{"created[gte]", std::to_string(from)}};
    if (window.until > 0) range.emplace_back("created[lt]", std::to_string(window.until));
    return range;
  };
  auto in_window = [&](std::int64_t t) {
    return t >= window.since && (window.until <= 0 || t < window.until);
  };
  std::set<std::string> seen_changes;
  auto take = [&](std::string_view kind, std::string_view json) {
    std::string why;
    auto e = synthesize_event(kind, json, version, why);
    // An invoice is listed by creation over a wider window; it belongs to this one by payment.
    if (!e || (kind == "invoice" && !in_window(e->created))) {
      ++out.skipped;
      return;
    }
    if (seen_changes.insert(e->change_key).second) out.events.push_back(std::move(*e));
  };
  auto fail = [&](const std::string& what, const ApiResult& r) {
    out.api = r.error;
    out.error = what + ": " + r.error.describe();
  };
  simdjson::dom::parser parser;

  // The clock: which objects changed in the window (reconcile.hpp, kEvidenceEventTypes).
  std::set<std::string> completed_sessions, captured_charges, paid_invoices;
  Form events = created_from(window.since);
  for (const auto type : kEvidenceEventTypes) events.emplace_back("types[]", std::string(type));
  std::size_t listed_events = 0;
  const auto ev = client.list("/v1/events", events, [&](std::string_view, std::string_view json) {
    ++listed_events;
    simdjson::dom::element e;
    std::string_view type, id;
    if (parser.parse(json.data(), json.size()).get(e) || e["type"].get_string().get(type) ||
        e["data"]["object"]["id"].get_string().get(id) || !in_window(int_or(e["created"], 0))) {
      return true;
    }
    if (type.starts_with("checkout.session.")) {
      completed_sessions.emplace(id);
    } else if (type == "charge.captured") {
      captured_charges.emplace(id);
    } else if (type == "invoice.paid") {
      paid_invoices.emplace(id);
    }
    return true;
  });
  out.requests += ev.pages;
  out.listed["/v1/events"] = listed_events;
  out.events_complete = true;
  if (!ev.last.ok()) {
    if (ev.last.status != 403) {
      fail("GET /v1/events", ev.last);
      return out;
    }
    out.events_complete = false;
    out.warnings.push_back(
        "GET /v1/events: " + ev.last.error.describe() +
        "; without the Events read permission, sessions completed and charges captured in the "
        "window are told from the objects alone (expires_at, capture_before), and invoices paid "
        "in it are found only when created at most 62 days before or named by a charge");
  }
  if (window.since < now - kEventRetention) {
    out.events_complete = false;
    out.warnings.push_back(
        "--since is more than 30 days ago, beyond the events Stripe keeps: sessions and charges "
        "created before the window are kept when they could have changed in it");
  }

  // Refunds in the window, of charges made before it too: the charge's current snapshot carries
  // the cumulative refund.
  std::set<std::string> refunded_charges;
  std::size_t refunds = 0;
  const auto rf = client.list("/v1/refunds", created_from(window.since),
                              [&](std::string_view, std::string_view json) {
                                ++refunds;
                                simdjson::dom::element e;
                                std::string_view charge;
                                if (!parser.parse(json.data(), json.size()).get(e) &&
                                    !e["charge"].get_string().get(charge) && !charge.empty()) {
                                  refunded_charges.emplace(charge);
                                }
                                return true;
                              });
  out.requests += rf.pages;
  out.listed["/v1/refunds"] = refunds;
  if (!rf.last.ok()) {
    fail("GET /v1/refunds", rf.last);
    return out;
  }

  std::set<std::string> listed_sessions, listed_charges, listed_invoices;
  std::set<std::string> charged_invoices;  // invoices the window's charges paid
  // Whether an object listed from before the window changed in it (reconcile.hpp).
  auto session_changed = [&](std::string_view id, const simdjson::dom::element& session) {
    const std::int64_t created = int_or(session["created"], 0);
    if (in_window(created) || completed_sessions.contains(std::string(id))) return true;
    if (out.events_complete || created >= window.since) return false;
    const std::int64_t expires = int_or(session["expires_at"], 0);
    return (expires > 0 ? expires : created + kSessionCompletionLookback) >= window.since;
  };
  auto charge_changed = [&](std::string_view id, const simdjson::dom::element& charge) {
    const std::string key(id);
    const std::int64_t created = int_or(charge["created"], 0);
    if (in_window(created) || captured_charges.contains(key) || refunded_charges.contains(key)) {
      return true;
    }
    if (out.events_complete || created >= window.since) return false;
    const std::int64_t capture_before =
        int_or(charge["payment_method_details"]["card"]["capture_before"], 0);
    return capture_before >= window.since;
  };
  struct Listing {
    const char* path;
    const char* kind;
    Form query;
  };
  Form sessions = created_from(window.since - std::max<std::int64_t>(0, window.session_lookback));
  sessions.emplace_back("status", "complete");
  Form invoices = created_from(window.since - std::max<std::int64_t>(0, window.invoice_lookback));
  invoices.emplace_back("status", "paid");
  const std::vector<Listing> listings{
      {"/v1/checkout/sessions", "checkout.session", std::move(sessions)},
      {"/v1/charges", "charge",
       created_from(window.since - std::max<std::int64_t>(0, window.charge_lookback))},
      {"/v1/invoices", "invoice", std::move(invoices)},
  };
  for (const auto& l : listings) {
    const std::string_view kind = l.kind;
    std::size_t n = 0;
    auto r = client.list(l.path, l.query, [&](std::string_view id, std::string_view json) {
      ++n;
      simdjson::dom::element obj;
      const bool parsed = !parser.parse(json.data(), json.size()).get(obj);
      if (kind == "checkout.session") {
        listed_sessions.emplace(id);
        if (!parsed || !session_changed(id, obj)) {
          ++out.skipped;
          return true;
        }
      } else if (kind == "charge") {
        listed_charges.emplace(id);
        if (!parsed || !charge_changed(id, obj)) {
          ++out.skipped;
          return true;
        }
        // Before basil a charge names the invoice it paid (kReconcileApiVersion).
        std::string_view invoice;
        if (!obj["invoice"].get_string().get(invoice) && !invoice.empty()) {
          charged_invoices.emplace(invoice);
        }
      } else {
        listed_invoices.emplace(id);
      }
      take(kind, json);
      return true;
    });
    out.requests += r.pages;
    out.listed[l.path] = n;
    if (!r.last.ok()) {
      fail(std::string("GET ") + l.path, r.last);
      return out;
    }
  }

  // What changed in the window but no listing showed: retrieved by id.
  auto retrieve = [&](const std::string& path, const char* kind,
                      const std::set<std::string>& ids, const std::set<std::string>& listed) {
    for (const auto& id : ids) {
      if (listed.contains(id)) continue;
      auto r = client.get(path + percent_encode(id));
      ++out.requests;
      if (!r.ok()) {
        fail("GET " + path + id, r);
        return false;
      }
      take(kind, r.body);
    }
    return true;
  };
  std::set<std::string> changed_charges = captured_charges;
  changed_charges.insert(refunded_charges.begin(), refunded_charges.end());
  paid_invoices.insert(charged_invoices.begin(), charged_invoices.end());
  if (!retrieve("/v1/charges/", "charge", changed_charges, listed_charges)) return out;
  if (!retrieve("/v1/invoices/", "invoice", paid_invoices, listed_invoices)) return out;
  retrieve("/v1/checkout/sessions/", "checkout.session", completed_sessions, listed_sessions);
  return out;
}

}  // namespace revtrace::stripe_api
