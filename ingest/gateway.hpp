#pragma once
// revtrace::ingest — the HTTP gateway: the only door into revtrace from the internet. It appends
// pixel events, checkout redirects and verified Stripe webhooks to the input topics, keyed by
// site_id, and serves the tracking pixel. See ingest/README.md for routes and failure behaviour.
#include <cstdint>
#include <memory>

#include "common/config.hpp"
#include "common/metrics.hpp"

namespace revtrace::ingest {

class Gateway {
 public:
  Gateway(const common::Config& config, common::metrics::Registry& metrics);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds the listen address and starts serving; throws on bind or Kafka client set-up failure.
  void start();
  [[nodiscard]] std::uint16_t port() const noexcept;
  // SIGTERM path: stop accepting, drain in-flight requests, flush both producers (30 s in all).
  // Nothing acknowledged is lost as long as Kafka takes the records within the flush; when it
  // does not (broker unreachable), the records left over are logged as not delivered and
  // delivered_everything() turns false.
  void stop();
  // After stop(): true when the flush delivered every record still queued at shutdown, false
  // when some were still queued at its deadline or failed during it (accepted pixel events among
  // them are lost). The process then exits non-zero.
  [[nodiscard]] bool delivered_everything() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace revtrace::ingest
