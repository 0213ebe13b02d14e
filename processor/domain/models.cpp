#include "processor/domain/models.hpp"

#include <algorithm>
#include <numeric>

namespace revtrace::domain {
namespace {

__extension__ using Int128 = __int128;
__extension__ using UInt128 = unsigned __int128;

constexpr int kQ = 62;  // fixed-point fraction bits of time-decay weights
constexpr int kFractionBits = 62;  // bits of age / half-life used below one half-life

constexpr UInt128 isqrt(UInt128 x) {
  UInt128 root = 0;
  UInt128 bit = static_cast<UInt128>(1) << 126;
  while (bit > x) bit >>= 2;
  while (bit != 0) {
    if (x >= root + bit) {
      x -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return root;
}

// kHalves[k] = 2^(-2^-k) in Q62, truncated: 2^(-1/2), 2^(-1/4), ... Each is the integer square
// root of the previous one (times 2^62), so the table is exact integer arithmetic, computed by
// the compiler — no floating point, no libm.
constexpr std::array<std::uint64_t, kFractionBits + 1> make_halves() {
  std::array<std::uint64_t, kFractionBits + 1> h{};
  h[0] = std::uint64_t{1} << (kQ - 1);  // 2^-1
  for (std::size_t k = 1; k < h.size(); ++k) {
    h[k] = static_cast<std::uint64_t>(isqrt(static_cast<UInt128>(h[k - 1]) << kQ));
  }
  return h;
}
constexpr auto kHalves = make_halves();
static_assert(kHalves[1] == 3260954456333195553ULL);  // floor(2^62 / sqrt(2))

// Whether the touch is Direct for last_non_direct: by its recorded channel when it has one.
bool counts_as_direct(const Touch& t) {
  return t.channel.empty() ? is_direct(t) : t.channel == "Direct";
}

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

std::int64_t time_decay_weight(Millis age) {
  if (age <= 0) return std::int64_t{1} << kQ;
  const Millis halvings = age / kTimeDecayHalfLife;
  if (halvings >= kQ) return 0;
  // 2^-(r/H) = product of 2^(-2^-k) over the 1-bits of the binary fraction r/H, whose bits come
  // from exact long division.
  Millis r = age % kTimeDecayHalfLife;
  UInt128 w = UInt128{1} << kQ;
  for (int k = 1; k <= kFractionBits && r != 0; ++k) {
    r *= 2;
    if (r >= kTimeDecayHalfLife) {
      r -= kTimeDecayHalfLife;
      w = (w * kHalves[static_cast<std::size_t>(k)]) >> kQ;
    }
  }
  return static_cast<std::int64_t>(w >> halvings);
}

std::vector<std::int64_t> apportion(std::int64_t amount, std::span<const std::int64_t> weights) {
  const std::size_t n = weights.size();
  std::vector<std::int64_t> out(n, 0);
  if (n == 0) return out;
  if (amount < 0) {
    // Mirror, so that rounding of a reversal matches the rounding of the original.
    out = apportion(-amount, weights);
    for (auto& v : out) v = -v;
    return out;
  }
  Int128 total = 0;
  for (auto w : weights) total += std::max<std::int64_t>(w, 0);
  if (total == 0) {
    out.back() = amount;
    return out;
  }
  std::vector<Int128> remainder(n);
  std::int64_t assigned = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Int128 product = static_cast<Int128>(amount) * std::max<std::int64_t>(weights[i], 0);
    out[i] = static_cast<std::int64_t>(product / total);
    remainder[i] = product % total;
    assigned += out[i];
  }
  // Fewer than n units are left (the remainders sum to less than n * total).
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return remainder[a] != remainder[b] ? remainder[a] > remainder[b] : a > b;
  });
  for (std::size_t k = 0; assigned < amount; ++k, ++assigned) ++out[order[k]];
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
      std::size_t pick = n - 1;  // all Direct: the last touch
      for (std::size_t i = n; i-- > 0;) {
        if (!counts_as_direct(touches[i])) {
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
      if (n <= 2) {
        std::fill(weights.begin(), weights.end(), 1);  // one: all; two: 50/50
      } else {
        // 40 % / 20 % shared / 40 % as integer weights over a total of 100 * (n - 2):
        // first and last 40 * (n - 2) each, every middle touch 20.
        const auto middles = static_cast<std::int64_t>(n - 2);
        std::fill(weights.begin(), weights.end(), 20);
        weights.front() = 40 * middles;
        weights.back() = 40 * middles;
      }
      break;
    case Model::time_decay:
      for (std::size_t i = 0; i < n; ++i) weights[i] = time_decay_weight(paid_at - touches[i].at);
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
