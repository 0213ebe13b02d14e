#pragma once
// revtrace::projections — consumes revtrace.attributed-revenue.v1, keeps per-site read models in
// RocksDB and serves them through the query API. See projections/README.md.
#include <cstdint>
#include <memory>

#include "common/config.hpp"
#include "common/metrics.hpp"

namespace revtrace::projections {

class QueryService {
 public:
  QueryService(const common::Config& config, common::metrics::Registry& metrics);
  ~QueryService();
  QueryService(const QueryService&) = delete;
  QueryService& operator=(const QueryService&) = delete;

  void start();
  [[nodiscard]] std::uint16_t port() const noexcept;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace revtrace::projections
