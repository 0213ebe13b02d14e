#include "common/metrics.hpp"

#include <cstdio>
#include <stdexcept>

namespace revtrace::common::metrics {
namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string with_label(const std::string& labels, const std::string& extra) {
  if (labels.empty()) return "{" + extra + "}";
  return "{" + labels + "," + extra + "}";
}

std::string braces(const std::string& labels) { return labels.empty() ? "" : "{" + labels + "}"; }

}  // namespace

void Histogram::observe(double seconds) noexcept {
  std::size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

double Histogram::quantile_upper_bound(double q) const noexcept {
  const auto total = count_.load();
  if (total == 0) return 0;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    seen += buckets_[i].load();
    if (static_cast<double>(seen) >= q * static_cast<double>(total)) return kBounds[i];
  }
  return -1;
}

Registry::Family& Registry::family(const std::string& name, const std::string& help,
                                   const std::string& type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.help = help;
    it->second.type = type;
  } else if (it->second.type != type) {
    throw std::logic_error("metrics: " + name + " registered with two types");
  }
  return it->second;
}

Counter& Registry::counter(const std::string& name, const std::string& help,
                           const std::string& labels) {
  std::lock_guard lock(mutex_);
  auto& slot = family(name, help, "counter").counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const std::string& labels) {
  std::lock_guard lock(mutex_);
  auto& slot = family(name, help, "gauge").gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const std::string& labels) {
  std::lock_guard lock(mutex_);
  auto& slot = family(name, help, "histogram").histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>();
  return *slot;
}

void Registry::gauge_fn(const std::string& name, const std::string& help, const std::string& labels,
                        std::function<double()> read) {
  std::lock_guard lock(mutex_);
  family(name, help, "gauge").functions[labels] = std::move(read);
}

std::string Registry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
    for (const auto& [labels, c] : f.counters) {
      out += name + braces(labels) + " " + std::to_string(c->value()) + "\n";
    }
    for (const auto& [labels, g] : f.gauges) {
      out += name + braces(labels) + " " + std::to_string(g->value()) + "\n";
    }
    for (const auto& [labels, fn] : f.functions) {
      out += name + braces(labels) + " " + number(fn()) + "\n";
    }
    for (const auto& [labels, h] : f.histograms) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i) {
        cumulative += h->buckets_[i].load();
        out += name + "_bucket" +
               with_label(labels, "le=\"" + number(Histogram::kBounds[i]) + "\"") + " " +
               std::to_string(cumulative) + "\n";
      }
      cumulative += h->buckets_[Histogram::kBounds.size()].load();
      out += name + "_bucket" + with_label(labels, "le=\"+Inf\"") + " " +
             std::to_string(cumulative) + "\n";
      out += name + "_sum" + braces(labels) + " " +
             number(static_cast<double>(h->sum_micros_.load()) / 1e6) + "\n";
      out += name + "_count" + braces(labels) + " " + std::to_string(h->count_.load()) + "\n";
    }
  }
  return out;
}

}  // namespace revtrace::common::metrics
