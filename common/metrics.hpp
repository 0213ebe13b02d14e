#pragma once
// Prometheus text-format metrics. Instruments are created once (under a mutex) and then updated
// lock-free on hot paths; references returned by the registry stay valid for its lifetime.
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace revtrace::common::metrics {

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t v) noexcept { value_.fetch_add(v, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Latency histogram with fixed buckets in seconds.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                  0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                  1.0,    2.5};
  void observe(double seconds) noexcept;
  [[nodiscard]] std::uint64_t count() const noexcept { return count_.load(); }
  // The smallest bucket bound below which at least `q` of the observations fall (+Inf → -1).
  [[nodiscard]] double quantile_upper_bound(double q) const noexcept;

 private:
  friend class Registry;
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micros_{0};
};

class Registry {
 public:
  // `labels` is the rendered label set without braces, e.g. `route="/v1/events",status="202"`.
  Counter& counter(const std::string& name, const std::string& help, const std::string& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const std::string& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::string& labels = {});
  // A gauge computed when scraped.
  void gauge_fn(const std::string& name, const std::string& help, const std::string& labels,
                std::function<double()> read);
  [[nodiscard]] std::string render() const;

 private:
  struct Family {
    std::string help;
    std::string type;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::map<std::string, std::function<double()>> functions;
  };
  Family& family(const std::string& name, const std::string& help, const std::string& type);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

}  // namespace revtrace::common::metrics
