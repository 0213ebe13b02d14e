#pragma once
// Attribution models with exact integer credits (processor/domain/README.md).
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

[[nodiscard]] std::string_view model_name(Model model);

// One integer credit per touch (touches chronological, already within the lookback window),
// summing exactly to `amount` (>= 0); empty for no touches. Largest-remainder rounding; equal
// remainders go to the later touch first (closer to the payment).
[[nodiscard]] std::vector<std::int64_t> credit(Model model, std::span<const Touch> touches,
                                               std::int64_t amount, Millis paid_at);

// Touches of a chronological list with paid_at - lookback <= at <= paid_at.
[[nodiscard]] std::vector<Touch> eligible_touches(std::span<const Touch> chronological,
                                                  Millis paid_at, Millis lookback);

// Splits `amount` in proportion to non-negative integer weights (largest remainder, ties to the
// later index). All to the last index when every weight is zero.
[[nodiscard]] std::vector<std::int64_t> apportion(std::int64_t amount,
                                                  std::span<const std::int64_t> weights);

}  // namespace revtrace::domain
