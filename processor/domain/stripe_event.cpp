#include "processor/domain/stripe_event.hpp"

#include <algorithm>
#include <array>

#include "processor/domain/json_read.hpp"

namespace revtrace::domain {

namespace {

constexpr std::array<std::string_view, 11> kUsedTypes{"checkout.session.completed",
                                                      "checkout.session.async_payment_succeeded",
                                                      "checkout.session.async_payment_failed",
                                                      "charge.succeeded",
                                                      "charge.captured",
                                                      "charge.refunded",
                                                      "payment_intent.succeeded",
                                                      "invoice.paid",
                                                      "invoice.payment_succeeded",
                                                      "invoice_payment.paid",
                                                      "customer.subscription.created"};

// Keeps the smaller of two non-empty strings: the deterministic answer when two snapshots of one
// object disagree on a value that should not change.
void merge_string(std::string& into, const std::string& from) {
  if (from.empty()) return;
  if (into.empty() || from < into) into = from;
}

void merge_min_time(Millis& into, Millis from) {
  if (from == 0) return;
  if (into == 0 || from < into) into = from;
}

void read_metadata(json::ObjectReader metadata, const MetadataKeys& keys, Observation& o) {
  if (!metadata.is_object()) return;
  for (const auto& k : keys.visitor_id_keys) {
    const auto v = metadata.optional_string(k);
    if (!v.empty()) o.visitor_ids.emplace(v);
  }
  for (const auto& k : keys.session_id_keys) {
    const auto v = metadata.optional_string(k);
    if (!v.empty()) o.session_ids.emplace(v);
  }
}

// Campaign metadata of a revtrace Payment Link (copied by Stripe onto each Checkout Session the
// link creates): revtrace_<field>, or utm_<field> for links made by hand.
void read_campaign(json::ObjectReader metadata, Observation& o) {
  if (!metadata.is_object()) return;
  for (const std::string_view field : {"source", "medium", "campaign", "term", "content"}) {
    auto v = metadata.optional_string("revtrace_" + std::string(field));
    if (v.empty()) v = metadata.optional_string("utm_" + std::string(field));
    if (!v.empty()) o.campaign.emplace(std::string(field), std::string(v));
  }
}

void add_email(std::vector<std::string>& emails, std::string_view raw) {
  auto e = normalise_email(raw);
  if (e.empty()) return;
  if (std::find(emails.begin(), emails.end(), e) == emails.end()) emails.push_back(std::move(e));
}

// Metadata of a Payment Link revtrace created (stripe_api/payment_links.hpp): Stripe copies it
// onto the link's checkout sessions, payment intents and subscriptions (and so invoices'
// subscription snapshots). `revtrace_link` marks it; then the campaign is read, and the customer
// the link names joins the payer's identity like any payer email.
void read_revtrace_link(json::ObjectReader metadata, Observation& o,
                        std::vector<std::string>& emails) {
  if (!metadata.is_object() || metadata.optional_string("revtrace_link").empty()) return;
  read_campaign(metadata, o);
  add_email(emails, metadata.optional_string("revtrace_customer_email"));
}

Millis seconds_to_ms(std::int64_t s) {
  return s * 1000;
}

}  // namespace

PaymentIdKind payment_id_kind(std::string_view id) noexcept {
  if (id.starts_with("in_")) return PaymentIdKind::invoice;
  if (id.starts_with("pi_")) return PaymentIdKind::payment_intent;
  if (id.starts_with("ch_") || id.starts_with("py_")) return PaymentIdKind::charge;
  if (id.starts_with("cs_")) return PaymentIdKind::checkout_session;
  if (id.starts_with("inpay_")) return PaymentIdKind::invoice_payment;
  return PaymentIdKind::other;
}

std::vector<std::string> Observation::payment_ids() const {
  std::vector<std::string> out;
  auto add = [&](const std::string& id) {
    if (!id.empty() && payment_id_kind(id) != PaymentIdKind::other &&
        std::find(out.begin(), out.end(), id) == out.end()) {
      out.push_back(id);
    }
  };
  if (kind != ObjectKind::subscription) add(id);
  add(checkout_session);
  add(payment_intent);
  add(charge);
  // A subscription's latest_invoice is its first invoice, not this object's own payment.
  if (kind != ObjectKind::subscription) add(invoice);
  return out;
}

void merge(Observation& into, const Observation& from) {
  if (into.id.empty()) {
    into = from;
    return;
  }
  if (from.state > into.state) into.state = from.state;
  into.amount = std::max(into.amount, from.amount);
  merge_string(into.currency, from.currency);
  merge_min_time(into.paid_at, from.paid_at);
  merge_min_time(into.created, from.created);
  into.amount_refunded = std::max(into.amount_refunded, from.amount_refunded);
  merge_string(into.checkout_session, from.checkout_session);
  merge_string(into.payment_intent, from.payment_intent);
  merge_string(into.charge, from.charge);
  merge_string(into.invoice, from.invoice);
  merge_string(into.subscription, from.subscription);
  merge_string(into.customer, from.customer);
  merge_string(into.payment_link, from.payment_link);
  merge_string(into.billing_reason, from.billing_reason);
  merge_string(into.mode, from.mode);
  merge_string(into.client_reference_id, from.client_reference_id);
  into.visitor_ids.insert(from.visitor_ids.begin(), from.visitor_ids.end());
  into.session_ids.insert(from.session_ids.begin(), from.session_ids.end());
  for (const auto& [k, v] : from.campaign) {
    auto [it, inserted] = into.campaign.emplace(k, v);
    if (!inserted && v < it->second) it->second = v;
  }
  into.email_hashes.insert(from.email_hashes.begin(), from.email_hashes.end());
}

void encode(codec::Writer& w, const Observation& o) {
  w.u64(static_cast<std::uint64_t>(o.kind));
  w.str(o.id);
  w.u64(static_cast<std::uint64_t>(o.state));
  w.i64(o.amount);
  w.str(o.currency);
  w.i64(o.paid_at);
  w.i64(o.created);
  w.i64(o.amount_refunded);
  for (const std::string* s :
       {&o.checkout_session, &o.payment_intent, &o.charge, &o.invoice, &o.subscription, &o.customer,
        &o.payment_link, &o.billing_reason, &o.mode, &o.client_reference_id}) {
    w.str(*s);
  }
  w.strings(o.visitor_ids);
  w.strings(o.session_ids);
  w.u64(o.campaign.size());
  for (const auto& [k, v] : o.campaign) {
    w.str(k);
    w.str(v);
  }
  w.strings(o.email_hashes);
}

Observation decode_observation(codec::Reader& r) {
  Observation o;
  const auto kind = r.u64();
  o.kind = kind <= static_cast<std::uint64_t>(ObjectKind::subscription)
               ? static_cast<ObjectKind>(kind)
               : ObjectKind::charge;
  o.id = r.str();
  const auto state = r.u64();
  o.state = state <= 3 ? static_cast<PayState>(state) : PayState::none;
  o.amount = r.i64();
  o.currency = r.str();
  o.paid_at = r.i64();
  o.created = r.i64();
  o.amount_refunded = r.i64();
  for (std::string* s :
       {&o.checkout_session, &o.payment_intent, &o.charge, &o.invoice, &o.subscription, &o.customer,
        &o.payment_link, &o.billing_reason, &o.mode, &o.client_reference_id}) {
    *s = r.str();
  }
  o.visitor_ids = r.strings();
  o.session_ids = r.strings();
  const auto n = r.count();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    auto k = r.str();
    o.campaign.emplace(std::move(k), r.str());
  }
  o.email_hashes = r.strings();
  return o;
}

bool is_used_event_type(std::string_view type) noexcept {
  return std::find(kUsedTypes.begin(), kUsedTypes.end(), type) != kUsedTypes.end();
}

std::string normalise_email(std::string_view email) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!email.empty() && space(email.front())) email.remove_prefix(1);
  while (!email.empty() && space(email.back())) email.remove_suffix(1);
  std::string out(email);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

namespace {

using Kind = StripeEventParse::Kind;

StripeEventParse invalid(std::string reason) {
  StripeEventParse p;
  p.kind = Kind::invalid;
  p.reason = std::move(reason);
  return p;
}

// data.object of each used type -> Observation. `o` holds the envelope-derived defaults.
void read_checkout_session(json::ObjectReader& obj, const std::string& type, Millis event_created,
                           const MetadataKeys& keys, StripeEvent& ev, StripeEventParse& result) {
  Observation& o = ev.object;
  o.kind = ObjectKind::checkout_session;
  o.mode = std::string(obj.optional_string("mode"));
  const auto status = obj.required_string("payment_status");
  if (!obj.ok()) return;
  if (o.mode == "setup") {
    result.kind = Kind::ignored;
    result.reason = "setup-mode checkout session " + o.id + " carries no payment";
    return;
  }
  if (type == "checkout.session.async_payment_failed") {
    o.state = PayState::failed;
  } else if (type == "checkout.session.async_payment_succeeded" || status == "paid") {
    o.state = PayState::succeeded;
  } else if (status == "no_payment_required") {
    // A free checkout (trial, 100 % discount): no money, but it still marks when and how the
    // customer was acquired, which the subscription's paid renewals inherit.
    o.state = PayState::succeeded;
  } else {
    o.state = PayState::pending;  // "unpaid": a delayed method; revenue only once it succeeds
  }
  if (o.state == PayState::succeeded && status != "no_payment_required") {
    const auto amount = obj.required_int("amount_total");
    if (!obj.ok()) return;
    o.amount = *amount;
  }
  o.currency =
      std::string(o.amount > 0 ? obj.required_string("currency") : obj.optional_string("currency"));
  if (o.state == PayState::succeeded) o.paid_at = event_created;
  if (auto c = obj.optional_int("created")) o.created = seconds_to_ms(*c);
  o.payment_intent = std::string(obj.optional_id("payment_intent"));
  o.invoice = std::string(obj.optional_id("invoice"));
  o.subscription = std::string(obj.optional_id("subscription"));
  o.customer = std::string(obj.optional_id("customer"));
  o.payment_link = std::string(obj.optional_id("payment_link"));
  o.client_reference_id = std::string(obj.optional_string("client_reference_id"));
  auto metadata = obj.optional_object("metadata");
  read_metadata(metadata, keys, o);
  if (!o.payment_link.empty()) read_campaign(metadata, o);
  read_revtrace_link(metadata, o, ev.emails);
  add_email(ev.emails, obj.optional_object("customer_details").optional_string("email"));
  add_email(ev.emails, obj.optional_string("customer_email"));
}

void read_charge(json::ObjectReader& obj, const MetadataKeys& keys, StripeEvent& ev) {
  Observation& o = ev.object;
  o.kind = ObjectKind::charge;
  const auto status = obj.required_string("status");
  const auto amount = obj.required_int("amount");
  const auto created = obj.required_int("created");
  const auto captured = obj.optional_bool("captured");
  const auto amount_captured = obj.optional_int("amount_captured");
  const auto paid = obj.optional_bool("paid");
  const auto refunded = obj.optional_int("amount_refunded");
  o.currency = std::string(obj.required_string("currency"));
  if (!obj.ok()) return;
  if (status == "succeeded" && paid.value_or(true)) {
    // An authorisation that was never captured moved no money: pending until charge.captured.
    o.state = captured.value_or(true) ? PayState::succeeded : PayState::pending;
  } else if (status == "failed") {
    o.state = PayState::failed;
  } else {
    o.state = PayState::pending;
  }
  if (o.state == PayState::succeeded) {
    o.amount = amount_captured && *amount_captured > 0 ? *amount_captured : *amount;
    o.paid_at = seconds_to_ms(*created);
  }
  o.created = seconds_to_ms(*created);
  o.amount_refunded = refunded.value_or(0);
  o.payment_intent = std::string(obj.optional_id("payment_intent"));
  o.invoice = std::string(obj.optional_id("invoice"));  // before basil only
  o.customer = std::string(obj.optional_id("customer"));
  read_metadata(obj.optional_object("metadata"), keys, o);
  add_email(ev.emails, obj.optional_object("billing_details").optional_string("email"));
  add_email(ev.emails, obj.optional_string("receipt_email"));
}

void read_payment_intent(json::ObjectReader& obj, Millis event_created, const MetadataKeys& keys,
                         StripeEvent& ev) {
  Observation& o = ev.object;
  o.kind = ObjectKind::payment_intent;
  const auto received = obj.required_int("amount_received");
  const auto status = obj.optional_string("status");
  if (!obj.ok()) return;
  o.state = status.empty() || status == "succeeded" ? PayState::succeeded : PayState::pending;
  if (o.state == PayState::succeeded) {
    o.amount = *received;
    o.paid_at = event_created;
  }
  o.currency =
      std::string(o.amount > 0 ? obj.required_string("currency") : obj.optional_string("currency"));
  if (auto c = obj.optional_int("created")) o.created = seconds_to_ms(*c);
  o.charge = std::string(obj.optional_id("latest_charge"));
  o.invoice = std::string(obj.optional_id("invoice"));  // before basil only
  o.customer = std::string(obj.optional_id("customer"));
  read_metadata(obj.optional_object("metadata"), keys, o);
  read_revtrace_link(obj.optional_object("metadata"), o, ev.emails);
  add_email(ev.emails, obj.optional_string("receipt_email"));
}

void read_invoice(json::ObjectReader& obj, Millis event_created, const MetadataKeys& keys,
                  StripeEvent& ev) {
  Observation& o = ev.object;
  o.kind = ObjectKind::invoice;
  const auto paid = obj.required_int("amount_paid");
  o.currency = std::string(obj.required_string("currency"));
  if (!obj.ok()) return;
  o.state = PayState::succeeded;  // invoice.paid / invoice.payment_succeeded: the invoice is paid
  o.amount = *paid;
  const auto paid_at = obj.optional_object("status_transitions").optional_int("paid_at");
  o.paid_at = paid_at ? seconds_to_ms(*paid_at) : event_created;
  if (auto c = obj.optional_int("created")) o.created = seconds_to_ms(*c);
  o.customer = std::string(obj.optional_id("customer"));
  o.billing_reason = std::string(obj.optional_string("billing_reason"));
  read_metadata(obj.optional_object("metadata"), keys, o);
  // Before basil: subscription, subscription_details.metadata, charge and payment_intent at the
  // top level. Basil and later: parent.subscription_details.{subscription,metadata}; the link to
  // the payment comes from invoice_payment.paid.
  o.subscription = std::string(obj.optional_id("subscription"));
  o.charge = std::string(obj.optional_id("charge"));
  o.payment_intent = std::string(obj.optional_id("payment_intent"));
  read_metadata(obj.optional_object("subscription_details").optional_object("metadata"), keys, o);
  read_revtrace_link(obj.optional_object("subscription_details").optional_object("metadata"), o,
                     ev.emails);
  auto parent = obj.optional_object("parent").optional_object("subscription_details");
  if (o.subscription.empty()) o.subscription = std::string(parent.optional_id("subscription"));
  read_metadata(parent.optional_object("metadata"), keys, o);
  read_revtrace_link(parent.optional_object("metadata"), o, ev.emails);
  add_email(ev.emails, obj.optional_string("customer_email"));
}

void read_invoice_payment(json::ObjectReader& obj, Millis event_created, StripeEvent& ev) {
  Observation& o = ev.object;
  o.kind = ObjectKind::invoice_payment;
  o.invoice = std::string(obj.optional_id("invoice"));
  if (o.invoice.empty()) obj.fail("missing string field invoice");
  const auto paid = obj.required_int("amount_paid");
  o.currency = std::string(obj.required_string("currency"));
  if (!obj.ok()) return;
  o.state = PayState::succeeded;
  o.amount = *paid;
  const auto paid_at = obj.optional_object("status_transitions").optional_int("paid_at");
  o.paid_at = paid_at ? seconds_to_ms(*paid_at) : event_created;
  if (auto c = obj.optional_int("created")) o.created = seconds_to_ms(*c);
  auto payment = obj.optional_object("payment");
  o.payment_intent = std::string(payment.optional_id("payment_intent"));
  o.charge = std::string(payment.optional_id("charge"));
}

void read_subscription(json::ObjectReader& obj, const MetadataKeys& keys, StripeEvent& ev) {
  Observation& o = ev.object;
  o.kind = ObjectKind::subscription;
  o.customer = std::string(obj.optional_id("customer"));
  o.invoice = std::string(obj.optional_id("latest_invoice"));  // at creation: the first invoice
  o.currency = std::string(obj.optional_string("currency"));
  if (auto c = obj.optional_int("created")) o.created = seconds_to_ms(*c);
  read_metadata(obj.optional_object("metadata"), keys, o);
  // The link's customer joins the subscription's identity; its campaign reaches the payments
  // through the invoices' subscription snapshots (a subscription is no payment of its own).
  Observation ignored;
  read_revtrace_link(obj.optional_object("metadata"), ignored, ev.emails);
}

}  // namespace

StripeEventParse parse_stripe_record(std::string_view record_json, const MetadataKeys& keys) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(record_json.data(), record_json.size()).get(root)) {
    return invalid(std::string("stripe event: invalid JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::parser payload_parser;
  return parse_stripe_record(root, keys, payload_parser);
}

StripeEventParse parse_stripe_record(simdjson::dom::element root, const MetadataKeys& keys,
                                     simdjson::dom::parser& payload_parser) {
  std::string error;
  json::ObjectReader record(root, "stripe event", &error);
  if (!record.is_object()) return invalid("stripe event: record is not a JSON object");
  StripeEventParse result;
  StripeEvent& ev = result.event;
  ev.site_id = std::string(record.required_string("site_id"));
  ev.event_id = std::string(record.required_string("event_id"));
  ev.type = std::string(record.required_string("event_type"));
  const auto livemode = record.required_bool("livemode");
  const std::string_view payload = record.required_string("payload");
  if (!error.empty()) return invalid(error);
  ev.livemode = *livemode;
  if (!is_used_event_type(ev.type)) {
    result.kind = Kind::unused;
    result.reason = "unused Stripe event type " + ev.type;
    return result;
  }

  // The payload is parsed a second time: it is the raw webhook body, kept byte for byte. (The
  // view points into the record's document, which payload_parser does not touch.)
  simdjson::dom::element body;
  if (auto err = payload_parser.parse(payload.data(), payload.size()).get(body)) {
    return invalid(std::string("stripe event: payload is not JSON: ") +
                   simdjson::error_message(err));
  }
  json::ObjectReader event(body, "stripe event payload", &error);
  if (!event.is_object()) return invalid("stripe event: payload is not a JSON object");
  const auto object_tag = event.optional_string("object");
  if (!object_tag.empty() && object_tag != "event") {
    return invalid("stripe event: payload is a Stripe " + std::string(object_tag) +
                   ", not an event");
  }
  const auto id = event.required_string("id");
  const auto type = event.required_string("type");
  const auto created = event.required_int("created");
  auto data = event.required_object("data");
  auto object = data.required_object("object");
  if (!error.empty()) return invalid(error);
  if (id != ev.event_id) {
    return invalid("stripe event: payload id " + std::string(id) + " differs from event_id " +
                   ev.event_id);
  }
  if (type != ev.type) {
    return invalid("stripe event: payload type " + std::string(type) + " differs from event_type " +
                   ev.type);
  }
  ev.created = seconds_to_ms(*created);

  json::ObjectReader obj(object.object(), ev.type + ": data.object", &error);
  ev.object.id = std::string(obj.required_string("id"));
  if (!error.empty()) return invalid(error);
  result.kind = Kind::ok;
  const std::string& t = ev.type;
  if (t.starts_with("checkout.session.")) {
    read_checkout_session(obj, t, ev.created, keys, ev, result);
  } else if (t.starts_with("charge.")) {
    read_charge(obj, keys, ev);
  } else if (t == "payment_intent.succeeded") {
    read_payment_intent(obj, ev.created, keys, ev);
  } else if (t == "invoice.paid" || t == "invoice.payment_succeeded") {
    read_invoice(obj, ev.created, keys, ev);
  } else if (t == "invoice_payment.paid") {
    read_invoice_payment(obj, ev.created, ev);
  } else {
    read_subscription(obj, keys, ev);
  }
  if (!error.empty()) return invalid(error);
  if (result.kind == Kind::ok) {
    const auto kind = payment_id_kind(ev.object.id);
    bool matches = true;  // invoice payment ids are not checked: their prefix is not documented
    switch (ev.object.kind) {
      case ObjectKind::checkout_session:
        matches = kind == PaymentIdKind::checkout_session;
        break;
      case ObjectKind::payment_intent:
        matches = kind == PaymentIdKind::payment_intent;
        break;
      case ObjectKind::charge:
        matches = kind == PaymentIdKind::charge;
        break;
      case ObjectKind::invoice:
        matches = kind == PaymentIdKind::invoice;
        break;
      case ObjectKind::subscription:
        matches = ev.object.id.starts_with("sub_");
        break;
      case ObjectKind::invoice_payment:
        break;
    }
    if (!matches) {
      return invalid(ev.type + ": data.object.id " + ev.object.id +
                     " has the wrong prefix for this event type");
    }
    if (ev.object.amount < 0) return invalid(ev.type + ": data.object has a negative amount");
  }
  return result;
}

}  // namespace revtrace::domain
