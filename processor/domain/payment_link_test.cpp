// Payment Links created by revtrace (stripe_api/payment_links.hpp): their metadata reaches the
// engine on the checkout session, the payment intent or the subscription snapshot of an invoice,
// and is credited to its campaign (method payment_link) when no stronger evidence exists, and to
// the named customer's identity. One table; every row in many arrival orders with redeliveries.
#include <catch2/catch.hpp>

#include "processor/domain/engine_test_support.hpp"

using namespace revtrace::domain;
using namespace revtrace::domain::testing;

namespace {

const Millis kPaid = T0 + 2 * kDay;

bj::object link_metadata(const std::string& campaign, const std::string& email = "",
                         const std::string& extra_key = "", const std::string& extra_value = "") {
  bj::object m{{"revtrace_site", kSite}, {"revtrace_link", "rtl_0123456789abcdef01234567"}};
  if (!campaign.empty()) {
    m["revtrace_campaign"] = campaign;
    m["revtrace_source"] = "podcast";
  }
  if (!email.empty()) m["revtrace_customer_email"] = email;
  if (!extra_key.empty()) m[extra_key] = extra_value;
  return m;
}

Input session_event(const std::string& evt, bj::object md, const std::string& plink = "plink_9") {
  CheckoutSpec s;
  s.id = "cs_test_PL";
  s.amount = 5000;
  s.payment_intent = "pi_PL";
  s.payment_link = plink;
  s.metadata = std::move(md);
  s.created = kPaid - 3 * kMinute;
  return stripe_event(evt, "checkout.session.completed", kPaid, checkout_session(s));
}

Input intent_event(const std::string& evt, bj::object md) {
  PaymentIntentSpec p;
  p.id = "pi_PL";
  p.amount = 5000;
  p.latest_charge = "ch_PL";
  p.metadata = std::move(md);
  p.created = kPaid - 2 * kMinute;
  return stripe_event(evt, "payment_intent.succeeded", kPaid, payment_intent(p));
}

Input charge_event(const std::string& evt) {
  ChargeSpec c;
  c.id = "ch_PL";
  c.amount = 5000;
  c.payment_intent = "pi_PL";
  c.created = kPaid;
  return stripe_event(evt, "charge.succeeded", kPaid, charge(c));
}

Input first_invoice_event(const std::string& evt, bj::object snapshot) {
  InvoiceSpec i;
  i.id = "in_PL";
  i.amount = 5000;
  i.subscription = "sub_PL";
  i.customer = "cus_PL";
  i.subscription_metadata = std::move(snapshot);
  i.paid_at = kPaid;
  return stripe_event(evt, "invoice.paid", kPaid, invoice(i));
}

struct Row {
  const char* name;
  std::vector<Input> web;
  std::vector<Input> stripe;  // each is also redelivered under another event id
  const char* key;
  const char* method;
  std::size_t touches;
  const char* campaign;  // of the last touch ("" = none is the link's)
  std::vector<std::string> visitors;
};

std::vector<Row> rows() {
  const auto visit = pageview("v-pl", "pl-pv", T0, "https://shop.example/?utm_source=google&utm_medium=cpc");
  const auto signup = identify("v-pl", "pl-id", T0 + kMinute, "Buyer@Example.com ");
  return {
      {"checkout session of a revtrace link, no visit: the campaign",
       {}, {session_event("evt_a", link_metadata("may-episode"))},
       "acme/pi_PL", "payment_link", 1, "may-episode", {}},
      {"a link made by hand (payment_link set, utm_ metadata): the campaign",
       {}, {session_event("evt_b", bj::object{{"utm_campaign", "hand-made"}})},
       "acme/pi_PL", "payment_link", 1, "hand-made", {}},
      {"payment intent only (charge.* + payment_intent.* account): payment_intent_data metadata",
       {}, {intent_event("evt_c", link_metadata("may-episode")), charge_event("evt_d")},
       "acme/pi_PL", "payment_link", 1, "may-episode", {}},
      {"basil first invoice: the link's subscription_data metadata snapshot",
       {}, {first_invoice_event("evt_e", link_metadata("yearly-plan"))},
       "acme/in_PL", "payment_link", 1, "yearly-plan", {}},
      {"the named customer identified before: visitor touch + campaign, method payment_link",
       {visit, signup}, {session_event("evt_f", link_metadata("may-episode", "buyer@example.com"))},
       "acme/pi_PL", "payment_link", 2, "may-episode", {"v-pl"}},
      {"the named customer without a campaign: identity graph",
       {visit, signup}, {session_event("evt_g", link_metadata("", "buyer@example.com"))},
       "acme/pi_PL", "identity_graph", 1, "", {"v-pl"}},
      {"a visitor id in the link's metadata outranks the campaign (both touches count)",
       {visit}, {session_event("evt_h", link_metadata("may-episode", "", "revtrace_visitor_id", "v-pl"))},
       "acme/pi_PL", "metadata", 2, "may-episode", {"v-pl"}},
      {"revtrace_campaign on a payment intent without the revtrace_link marker: not a link",
       {}, {intent_event("evt_i", bj::object{{"revtrace_campaign", "x"}}), charge_event("evt_j")},
       "acme/pi_PL", "unattributed", 0, "", {}},
      {"revtrace_customer_email without the marker is not read",
       {visit, signup},
       {intent_event("evt_k", bj::object{{"revtrace_customer_email", "buyer@example.com"}})},
       "acme/pi_PL", "unattributed", 0, "", {}},
  };
}

}  // namespace

TEST_CASE("Payment Links: campaign and customer from the link's metadata, in every order",
          "[engine][payment_link]") {
  for (const auto& row : rows()) {
    DYNAMIC_SECTION(row.name) {
      std::vector<Input> others = row.stripe;
      for (const auto& in : row.stripe) {  // Stripe's "two events for one change" of each
        auto twin = in;
        const auto id_pos = twin.value.find("\"event_id\":\"") + 12;
        const auto id_end = twin.value.find('"', id_pos);
        const std::string id = twin.value.substr(id_pos, id_end - id_pos);
        std::string::size_type p = 0;
        while ((p = twin.value.find(id, p)) != std::string::npos) {
          twin.value.replace(p, id.size(), id + "_twin");
          p += id.size() + 5;
        }
        others.push_back(twin);
      }
      std::map<std::string, std::string> first;
      for (int seed = 0; seed < 24; ++seed) {
        std::mt19937 rng(static_cast<unsigned>(seed) * 131u + 7u);
        Harness h;
        h.feed(interleave(row.web, others, rng));
        if (seed == 0) {
          first = h.ledger();
        } else {
          INFO("seed " << seed);
          REQUIRE(h.ledger() == first);  // byte for byte, revision included
        }
      }
      REQUIRE(first.size() == 1);  // counted once
      REQUIRE(first.count(row.key) == 1);
      View r(first.at(row.key));
      CHECK(r.num("amount") == 5000);
      CHECK(r.str("method") == row.method);
      REQUIRE(r.touches() == row.touches);
      CHECK(r.visitors() == row.visitors);
      if (row.touches > 0) {
        const auto last = row.touches - 1;
        CHECK(r.touch(last, "campaign") == (*row.campaign ? row.campaign : "<null>"));
        if (std::string_view(row.method) == "payment_link") {
          CHECK(r.credits("last_touch").back() == 5000);
        }
      }
    }
  }
}
