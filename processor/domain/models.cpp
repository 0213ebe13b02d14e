#include "processor/domain/models.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace revtrace::domain {
namespace {

__extension__ using Int128 = __int128;

}  // namespace

std::string_view model_name(Model model) {
  switch (model) {
    case Model::first_touch: return "first_touch";
    case Model::last_touch: return "last_touch";
    case Model::last_non_direct: return "last_non_direct";
    case Model::linear: return "linear";
    case Model::position_based: return "position_based";
    case Model::time_decay: return "time_decay";
  }
  return "unknown";
}

std::vector<std::int64_t> apportion(std::int64_t amount, std::span<const std::int64_t> weights) {
  const std::size_t n = weights.size();
  std::vector<std::int64_t> out(n, 0);
  if (n == 0) return out;
  Int128 total = 0;
  for (auto w : weights) total += w;
  if (total <= 0) {
    out.back() = amount;
    return out;
  }
  std::vector<Int128> remainder(n);
  std::int64_t assigned = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Int128 product = static_cast<Int128>(amount) * weights[i];
    out[i] = static_cast<std::int64_t>(product / total);
    remainder[i] = product % total;
    assigned += out[i];
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  // Largest remainder first; equal remainders: the later touch first.
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return remainder[a] != remainder[b] ? remainder[a] > remainder[b] : a > b;
  });
  for (std::size_t k = 0; assigned < amount; ++k, ++assigned) ++out[order[k % n]];
  return out;
}

std::vector<std::int64_t> credit(Model model, std::span<const Touch> touches, std::int64_t amount,
                                 Millis paid_at) {
  const std::size_t n = touches.size();
  if (n == 0) return {};
  std::vector<std::int64_t> weights(n, 0);
  switch (model) {
    case Model::first_touch:
      weights.front() = 1;
      break;
    case Model::last_touch:
      weights.back() = 1;
      break;
    case Model::last_non_direct: {
      std::size_t pick = n - 1;
      for (std::size_t i = n; i-- > 0;) {
        if (touches[i].channel != "Direct" && !is_direct(touches[i])) {
          pick = i;
          break;
        }
      }
      weights[pick] = 1;
      break;
    }
    case Model::linear:
      std::fill(weights.begin(), weights.end(), 1);
      break;
    case Model::position_based:
      if (n == 1) {
        weights[0] = 1;
      } else if (n == 2) {
        weights[0] = weights[1] = 1;
      } else {
        // 40 % first, 40 % last, 20 % shared by the middle touches: integer weights over
        // 100 * (n - 2).
        const auto middles = static_cast<std::int64_t>(n - 2);
        weights.front() = 40 * middles;
        weights.back() = 40 * middles;
        for (std::size_t i = 1; i + 1 < n; ++i) weights[i] = 20;
      }
      break;
    case Model::time_decay:
      // 2^(-(age / 7 days)), scaled to integers so that rounding is exact and deterministic.
      for (std::size_t i = 0; i < n; ++i) {
        const double age = static_cast<double>(std::max<Millis>(0, paid_at - touches[i].at));
        const double w = std::exp2(-age / static_cast<double>(kTimeDecayHalfLife));
        weights[i] = std::max<std::int64_t>(1, std::llround(w * 1e12));
      }
      break;
  }
  return apportion(amount, weights);
}

std::vector<Touch> eligible_touches(std::span<const Touch> chronological, Millis paid_at,
                                    Millis lookback) {
  std::vector<Touch> out;
  for (const auto& t : chronological) {
    if (t.at >= paid_at - lookback && t.at <= paid_at) out.push_back(t);
  }
  return out;
}

}  // namespace revtrace::domain
