#pragma once
// revtrace::projections — consumes revtrace.attributed-revenue.v1, keeps per-site read models in
// RocksDB and serves them through the query API. See projections/README.md.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/metrics.hpp"

namespace revtrace::projections {

// One route of the query API under /v1/sites/{site}. `path` is relative to that prefix; a
// "{name}" segment is a path parameter (it takes the rest of the path). Every one of them needs
// the site's bearer token. The router dispatches from exactly this table, so tests enumerate it
// to prove that no route escapes authentication or site isolation.
struct SiteRouteInfo {
  std::string method;  // "GET", "PUT", "POST"
  std::string path;    // e.g. "/revenue", "/payments/{payment}"
};

class QueryService {
 public:
  // Drops the read models under config.query.data_dir so that the next start re-consumes the
  // topics from offset 0 and rebuilds them (`revtrace query --rebuild`). Throws when a running
  // query side holds the directory.
  static void drop_read_models(const common::Config& config);
  // The routes under /v1/sites/{site}/, from the table the router dispatches with.
  [[nodiscard]] static std::vector<SiteRouteInfo> site_routes();

  QueryService(const common::Config& config, common::metrics::Registry& metrics);
  ~QueryService();
  QueryService(const QueryService&) = delete;
  QueryService& operator=(const QueryService&) = delete;

  void start();
  [[nodiscard]] std::uint16_t port() const noexcept;
  // Whether every partition was read up to its end at least once since start (the read models
  // then reflect everything the topics held when the query side started).
  [[nodiscard]] bool caught_up() const noexcept;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace revtrace::projections
