// Attribution models: exact integer credits summing to the amount, the documented rounding and
// tie-break, fixed-point time decay, and the lookback window.
#include "processor/domain/models.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>

using namespace revtrace::domain;

namespace {

using Credits = std::vector<std::int64_t>;

constexpr Millis kDay = 24LL * 3600 * 1000;
constexpr Millis kPaid = 1744000000000;

Touch touch(Millis at, const char* channel = "Email") {
  Touch t;
  t.at = at;
  t.channel = channel;
  if (std::string_view(channel) != "Direct") t.source = "src";
  return t;
}

// n touches one day apart, the last one day before the payment.
std::vector<Touch> touches(std::size_t n) {
  std::vector<Touch> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(touch(kPaid - static_cast<Millis>(n - i) * kDay));
  }
  return out;
}

// n touches at the same instant: time decay weighs them equally.
std::vector<Touch> simultaneous(std::size_t n) { return std::vector<Touch>(n, touch(kPaid - kDay)); }

std::int64_t sum(const Credits& c) { return std::accumulate(c.begin(), c.end(), std::int64_t{0}); }

}  // namespace

TEST_CASE("model names are the record's credit keys", "[models]") {
  const char* names[] = {"first_touch", "last_touch", "last_non_direct",
                         "linear",      "position_based", "time_decay"};
  for (std::size_t i = 0; i < kAllModels.size(); ++i) CHECK(model_name(kAllModels[i]) == names[i]);
}

TEST_CASE("every model: one non-negative credit per touch, summing exactly to the amount",
          "[models]") {
  const auto model = GENERATE(from_range(kAllModels));
  const std::int64_t amount = GENERATE(as<std::int64_t>{}, 0, 1, 7, 100, 800, 4900, 99999,
                                       1'000'000'000'000'000, 4'611'686'018'427'387'903);
  const std::size_t n = GENERATE(as<std::size_t>{}, 1, 2, 3, 5, 17, 400);
  INFO(model_name(model) << " amount " << amount << " over " << n << " touches");
  const auto c = credit(model, touches(n), amount, kPaid);
  REQUIRE(c.size() == n);
  CHECK(sum(c) == amount);
  CHECK(std::all_of(c.begin(), c.end(), [](std::int64_t v) { return v >= 0; }));
  // Determinism: the same input, the same output.
  CHECK(credit(model, touches(n), amount, kPaid) == c);
  // A reversal mirrors exactly.
  auto negated = credit(model, touches(n), -amount, kPaid);
  for (auto& v : negated) v = -v;
  CHECK(negated == c);
}

TEST_CASE("every model: no touches, no credits", "[models]") {
  for (const auto model : kAllModels) CHECK(credit(model, {}, 4900, kPaid).empty());
}

TEST_CASE("exact credits for small cases", "[models]") {
  struct Row {
    Model model;
    std::int64_t amount;
    std::size_t n;
    Credits expected;
  };
  using enum Model;
  // Ties go to the later touch first: 7 over 3 linear is 2/2/3, not 3/2/2.
  const Row rows[] = {
      {first_touch, 7, 3, {7, 0, 0}},
      {first_touch, 0, 2, {0, 0}},
      {first_touch, 4900, 1, {4900}},
      {last_touch, 7, 3, {0, 0, 7}},
      {last_touch, 1, 5, {0, 0, 0, 0, 1}},
      {last_non_direct, 100, 3, {0, 0, 100}},
      {linear, 7, 3, {2, 2, 3}},
      {linear, 100, 3, {33, 33, 34}},
      {linear, 1, 3, {0, 0, 1}},
      {linear, 1, 2, {0, 1}},
      {linear, 7, 2, {3, 4}},
      {linear, 7, 5, {1, 1, 1, 2, 2}},
      {linear, 100, 5, {20, 20, 20, 20, 20}},
      {linear, 4900, 3, {1633, 1633, 1634}},
      {linear, 800, 3, {266, 267, 267}},  // 800 JPY: zero-decimal currency, same integer rules
      {linear, 1'000'000'000'000'000, 3, {333'333'333'333'333, 333'333'333'333'333, 333'333'333'333'334}},
      {linear, 0, 5, {0, 0, 0, 0, 0}},
      {position_based, 7, 1, {7}},
      {position_based, 7, 2, {3, 4}},
      {position_based, 100, 2, {50, 50}},
      {position_based, 100, 3, {40, 20, 40}},
      {position_based, 7, 3, {3, 1, 3}},  // 2.8 / 1.4 / 2.8: the two .8 go last, then first
      {position_based, 1, 3, {0, 0, 1}},
      {position_based, 100, 5, {40, 6, 7, 7, 40}},  // middles 6.67 each: later ones first
      {position_based, 7, 5, {3, 0, 0, 1, 3}},
      {position_based, 4900, 5, {1960, 326, 327, 327, 1960}},
      {position_based, 800, 3, {320, 160, 320}},
      {position_based, 800, 5, {320, 53, 53, 54, 320}},
      {position_based, 1'000'000'000'000'000, 4,
       {400'000'000'000'000, 100'000'000'000'000, 100'000'000'000'000, 400'000'000'000'000}},
      {time_decay, 7, 3, {2, 2, 3}},  // same instant: equal weights, like linear
      {time_decay, 100, 1, {100}},
  };
  for (const auto& row : rows) {
    INFO(model_name(row.model) << " " << row.amount << " over " << row.n);
    const auto list = row.model == time_decay ? simultaneous(row.n) : touches(row.n);
    CHECK(credit(row.model, list, row.amount, kPaid) == row.expected);
  }
}

TEST_CASE("last_non_direct skips Direct touches", "[models]") {
  struct Row {
    std::vector<const char*> channels;
    Credits expected;
  };
  const Row rows[] = {
      {{"Organic Search", "Direct", "Direct"}, {7, 0, 0}},
      {{"Email", "Organic Search", "Direct"}, {0, 7, 0}},
      {{"Direct", "Paid Search"}, {0, 7}},
      {{"Direct"}, {7}},
      {{"Direct", "Direct", "Direct"}, {0, 0, 7}},  // Direct only when nothing else
  };
  for (const auto& row : rows) {
    std::vector<Touch> list;
    for (std::size_t i = 0; i < row.channels.size(); ++i) {
      list.push_back(touch(kPaid - static_cast<Millis>(10 - i) * kDay, row.channels[i]));
    }
    CHECK(credit(Model::last_non_direct, list, 7, kPaid) == row.expected);
  }
  // Without a channel recorded, is_direct decides.
  Touch bare_direct;
  bare_direct.at = kPaid - kDay;
  Touch bare_source = bare_direct;
  bare_source.at = kPaid - 2 * kDay;
  bare_source.referrer = "news.example.org";
  const std::vector<Touch> bare{bare_source, bare_direct};
  CHECK(credit(Model::last_non_direct, bare, 7, kPaid) == Credits{7, 0});
}

TEST_CASE("time_decay: half-life of 7 days", "[models]") {
  // Exactly one and two half-lives: weights 1/4, 1/2, 1 are exact in fixed point.
  const std::vector<Touch> three{touch(kPaid - 14 * kDay), touch(kPaid - 7 * kDay), touch(kPaid)};
  CHECK(credit(Model::time_decay, three, 700, kPaid) == Credits{100, 200, 400});
  CHECK(credit(Model::time_decay, three, 7, kPaid) == Credits{1, 2, 4});
  const std::vector<Touch> two{touch(kPaid - 7 * kDay), touch(kPaid)};
  CHECK(credit(Model::time_decay, two, 100, kPaid) == Credits{33, 67});

  // Ages that are not whole half-lives; expected values computed independently with 80-digit
  // decimal arithmetic of 2^(-age/7d) and largest-remainder rounding (no near-ties here).
  const std::vector<Touch> five{touch(kPaid - 40 * kDay), touch(kPaid - 10 * kDay),
                                touch(kPaid - 3 * kDay - 12345), touch(kPaid - kDay),
                                touch(kPaid)};
  CHECK(credit(Model::time_decay, five, 4900, kPaid) == Credits{31, 599, 1198, 1460, 1612});
  CHECK(credit(Model::time_decay, five, 7, kPaid) == Credits{0, 1, 2, 2, 2});
  CHECK(credit(Model::time_decay, five, 100, kPaid) == Credits{1, 12, 24, 30, 33});
  CHECK(credit(Model::time_decay, five, 800, kPaid) == Credits{5, 98, 196, 238, 263});
  CHECK(credit(Model::time_decay, five, 1, kPaid) == Credits{0, 0, 0, 0, 1});
  CHECK(credit(Model::time_decay, five, 1'000'000'000'000'000, kPaid) ==
        Credits{6'267'023'447'203, 122'233'394'453'756, 244'463'330'138'426, 298'008'353'677'781,
                329'027'898'282'834});
}

TEST_CASE("time_decay_weight: integer fixed point, close to 2^(-age/7d)", "[models]") {
  constexpr std::int64_t one = std::int64_t{1} << 62;
  CHECK(time_decay_weight(0) == one);
  CHECK(time_decay_weight(-kDay) == one);  // a touch after the payment is not boosted
  CHECK(time_decay_weight(kTimeDecayHalfLife) == one / 2);
  CHECK(time_decay_weight(3 * kTimeDecayHalfLife) == one / 8);
  CHECK(time_decay_weight(kTimeDecayHalfLife / 2) == 3260954456333195553);  // 2^62 / sqrt(2)
  CHECK(time_decay_weight(62 * kTimeDecayHalfLife) == 0);
  // Reference values floor(2^62 * 2^(-age/7d)) from 80-digit decimal arithmetic; the fixed-point
  // product truncates a few ulps of 2^-62 at most.
  const std::pair<Millis, std::int64_t> reference[] = {
      {1, 4611686013142042071},          {1000, 4611680733084581124},
      {kDay, 4176913159044679997},       {3 * kDay + 12345, 3426421064904566208},
      {10 * kDay, 1713234771668952580},  {40 * kDay, 87839191021357156},
      {89 * kDay, 686243679854352},
  };
  for (const auto& [age, expected] : reference) {
    INFO("age " << age);
    CHECK(std::llabs(time_decay_weight(age) - expected) <= 64);
  }
  // Older is never heavier.
  std::int64_t previous = time_decay_weight(0);
  for (Millis age = 0; age <= kDefaultLookback; age += 3 * 3600 * 1000 + 17) {
    const auto w = time_decay_weight(age);
    CHECK(w <= previous);
    previous = w;
  }
}

TEST_CASE("apportion: rounding rules", "[models]") {
  const std::vector<std::int64_t> zeros{0, 0, 0};
  CHECK(apportion(7, zeros) == Credits{0, 0, 7});  // no weight anywhere: all to the last
  const std::vector<std::int64_t> with_negative{-5, 1, 1};
  CHECK(apportion(7, with_negative) == Credits{0, 3, 4});  // a negative weight counts as 0
  const std::vector<std::int64_t> thirds{1, 1, 1};
  CHECK(apportion(2, thirds) == Credits{0, 1, 1});
  CHECK(apportion(-2, thirds) == Credits{0, -1, -1});
  const std::vector<std::int64_t> uneven{3, 1};
  CHECK(apportion(2, uneven) == Credits{1, 1});  // 1.5 / 0.5: equal remainders, later first
  CHECK(apportion(3, uneven) == Credits{2, 1});  // 2.25 / 0.75: larger remainder wins
  const std::vector<std::int64_t> none;
  CHECK(apportion(5, none).empty());
}

TEST_CASE("eligible_touches: lookback window boundaries", "[models]") {
  const Millis lookback = kDefaultLookback;
  REQUIRE(lookback == 90LL * kDay);
  const std::vector<Touch> all{
      touch(kPaid - lookback - 1),  // one ms too old
      touch(kPaid - lookback),      // exactly 90 days before: included
      touch(kPaid - kDay),
      touch(kPaid),                 // at the payment instant: included
      touch(kPaid + 1),             // after the payment: excluded
  };
  const auto eligible = eligible_touches(all, kPaid, lookback);
  REQUIRE(eligible.size() == 3);
  CHECK(eligible[0].at == kPaid - lookback);
  CHECK(eligible[1].at == kPaid - kDay);
  CHECK(eligible[2].at == kPaid);
  // A shorter per-site window.
  CHECK(eligible_touches(all, kPaid, kDay).size() == 2);
  CHECK(eligible_touches({}, kPaid, lookback).empty());
  // The window feeds the models: the one-ms-too-old touch gets nothing because it is not there.
  CHECK(credit(Model::first_touch, eligible, 4900, kPaid) == Credits{4900, 0, 0});
}
