#include "model/kernels/activations.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace moe::kernels {
namespace {

double SiluExact(double v) { return v / (1.0 + std::exp(-v)); }

TEST(Activations, SiluMatchesFormula) {
  for (double d = -100.0; d <= 100.0; d += 0.37) {
    const float v = static_cast<float>(d);
    const double want = SiluExact(v);
    EXPECT_NEAR(Silu(v), want, 1e-6 * std::fabs(want) + 1e-30) << v;
  }
  EXPECT_EQ(Silu(0.0f), 0.0f);
  EXPECT_NEAR(Silu(-1000.0f), 0.0f, 1e-30);
  EXPECT_FLOAT_EQ(Silu(1000.0f), 1000.0f);
}

TEST(Activations, SiluMulStackedOutOfPlaceAndInPlace) {
  const int64_t rows = 5, inter = 37;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  std::vector<float> gate_up(rows * 2 * inter);
  for (auto& v : gate_up) v = dist(rng);
  std::vector<float> want(rows * inter);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < inter; ++i) {
      want[r * inter + i] = static_cast<float>(SiluExact(gate_up[r * 2 * inter + i]) *
                                               gate_up[r * 2 * inter + inter + i]);
    }
  }
  std::vector<float> out(rows * inter);
  SiluMulStacked(gate_up.data(), rows, inter, out.data());
  for (int64_t i = 0; i < rows * inter; ++i) EXPECT_NEAR(out[i], want[i], 1e-5f) << i;

  SiluMulStacked(gate_up.data(), rows, inter, gate_up.data());
  for (int64_t i = 0; i < rows * inter; ++i) EXPECT_NEAR(gate_up[i], want[i], 1e-5f) << i;
}

TEST(Activations, SiluMulAndAxpy) {
  std::vector<float> gate = {-3.0f, -0.5f, 0.0f, 0.5f, 3.0f, 20.0f, -20.0f};
  std::vector<float> up = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f};
  std::vector<float> out(gate.size());
  SiluMul(gate.data(), up.data(), static_cast<int64_t>(gate.size()), out.data());
  for (size_t i = 0; i < gate.size(); ++i) {
    EXPECT_NEAR(out[i], SiluExact(gate[i]) * up[i], 1e-5) << i;
  }
  std::vector<float> y = {1.0f, 1.0f, 1.0f};
  const std::vector<float> x = {1.0f, -2.0f, 0.5f};
  Axpy(2.0f, x.data(), 3, y.data());
  EXPECT_EQ(y, (std::vector<float>{3.0f, -3.0f, 2.0f}));
}

}  // namespace
}  // namespace moe::kernels
