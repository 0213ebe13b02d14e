#pragma once
// The Payment Links routes of the query API (issue 8), hooked into QueryService's route table:
//   POST /v1/sites/{site}/payment-links  creates a Stripe Payment Link that carries its
//                                        attribution (stripe_api/payment_links.hpp), records it in
//                                        revtrace.payment-links.v1 and answers 201 with the record;
//   GET  /v1/sites/{site}/payment-links  lists the site's recorded links.
// Authentication and site isolation are the router's (query_service.cpp): these handlers only
// run for a request that carries the site's token.
//
// Stripe calls and topic scans block, and the HTTP handlers must not: both run on a small pool of
// worker threads of their own, with a bounded queue (503 + Retry-After when it is full).
#include <boost/url/params_view.hpp>
#include <memory>
#include <string>

#include "common/config.hpp"
#include "common/http.hpp"
#include "common/kafka.hpp"
#include "common/metrics.hpp"

namespace revtrace::projections {

class PaymentLinksRoutes {
 public:
  // `producer` must outlive this object (QueryService owns both and stops this one first).
  PaymentLinksRoutes(const common::Config& config, common::kafka::Producer& producer,
                     common::metrics::Registry& metrics);
  ~PaymentLinksRoutes();
  PaymentLinksRoutes(const PaymentLinksRoutes&) = delete;
  PaymentLinksRoutes& operator=(const PaymentLinksRoutes&) = delete;

  // Body: {"amount": 5000, "currency": "usd", "product": "Coaching call", optional "campaign",
  // "source", "medium", "customer_email", "redirect_url", "interval", "quantity"}. An
  // Idempotency-Key request header is passed to Stripe (and seeds revtrace's link id), so a
  // retried create returns the same link.
  void create(const common::http::Request& req, const std::string& site,
              const boost::urls::params_view& params, common::http::Responder respond);
  void list(const std::string& site, const boost::urls::params_view& params,
            common::http::Responder respond);

  // Finishes the jobs already running, answers the queued ones with 503 and joins the workers.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace revtrace::projections
