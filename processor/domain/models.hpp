#pragma once
// Attribution models with exact integer credits. Definitions, rounding and tie-break:
// processor/domain/README.md ("Models").
#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "processor/domain/touch.hpp"

namespace revtrace::domain {

enum class Model : std::uint8_t {
  first_touch,
  last_touch,
  last_non_direct,
  linear,
  position_based,
  time_decay
};
inline constexpr std::array<Model, 6> kAllModels{Model::first_touch,    Model::last_touch,
                                                 Model::last_non_direct, Model::linear,
                                                 Model::position_based,  Model::time_decay};
inline constexpr Millis kDefaultLookback = 90LL * 24 * 3600 * 1000;
inline constexpr Millis kTimeDecayHalfLife = 7LL * 24 * 3600 * 1000;

// "first_touch", "last_touch", "last_non_direct", "linear", "position_based", "time_decay" — the
// keys of the "credits" object of revtrace.attributed-revenue.v1.
[[nodiscard]] std::string_view model_name(Model model);

// One integer credit per touch (touches chronological, already within the lookback window),
// summing exactly to `amount`; empty for no touches. Largest-remainder rounding; equal remainders
// go to the later touch first (the one closer to the payment). Pure integer arithmetic for every
// model (time_decay uses fixed-point powers of two), so a result never depends on the CPU, the
// compiler or the libm. A negative amount (a reversal) gets the negated credits of its absolute
// value, so credit(-a) == -credit(a) element-wise.
[[nodiscard]] std::vector<std::int64_t> credit(Model model, std::span<const Touch> touches,
                                               std::int64_t amount, Millis paid_at);

// Touches of a chronological list with paid_at - lookback <= at <= paid_at, order kept.
[[nodiscard]] std::vector<Touch> eligible_touches(std::span<const Touch> chronological,
                                                  Millis paid_at, Millis lookback);

// Splits `amount` in proportion to integer weights (negative weights count as 0): each index gets
// floor(amount * w / total), then the units left over go one each by largest remainder, equal
// remainders to the later index. Everything to the last index when every weight is zero.
// Exact for |amount| < 2^63 and weights < 2^62 (128-bit intermediates).
[[nodiscard]] std::vector<std::int64_t> apportion(std::int64_t amount,
                                                  std::span<const std::int64_t> weights);

// The time-decay weight of a touch `age` ms before the payment: 2^(-age / half-life) in Q62 fixed
// point (2^62 = weight 1 at age <= 0), truncated; 0 from 62 half-lives on.
[[nodiscard]] std::int64_t time_decay_weight(Millis age);

}  // namespace revtrace::domain
