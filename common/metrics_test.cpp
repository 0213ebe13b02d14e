#include <catch2/catch.hpp>

#include "common/metrics.hpp"

using revtrace::common::metrics::Registry;

TEST_CASE("metrics: Prometheus text rendering", "[metrics]") {
  Registry r;
  r.counter("revtrace_requests_total", "Requests.", "route=\"/v1/events\",status=\"202\"").inc(3);
  auto& h = r.histogram("revtrace_latency_seconds", "Latency.");
  h.observe(0.0004);
  h.observe(0.2);
  r.gauge_fn("revtrace_queue_depth", "Depth.", "", [] { return 7.0; });
  const auto text = r.render();
  CHECK_THAT(text, Catch::Contains("# TYPE revtrace_requests_total counter"));
  CHECK_THAT(text, Catch::Contains("revtrace_requests_total{route=\"/v1/events\",status=\"202\"} 3"));
  CHECK_THAT(text, Catch::Contains("revtrace_latency_seconds_bucket{le=\"0.0005\"} 1"));
  CHECK_THAT(text, Catch::Contains("revtrace_latency_seconds_bucket{le=\"+Inf\"} 2"));
  CHECK_THAT(text, Catch::Contains("revtrace_latency_seconds_count 2"));
  CHECK_THAT(text, Catch::Contains("revtrace_queue_depth 7"));
  CHECK(h.quantile_upper_bound(0.5) == Approx(0.0005));
}
