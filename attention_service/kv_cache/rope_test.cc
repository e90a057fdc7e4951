#include "attention_service/kv_cache/rope.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace moe::attention {
namespace {

// Rotate-half RoPE in float64, straight from the Hugging Face definition.
std::vector<double> Reference(const std::vector<float>& x, int n, int heads, int d, double theta,
                              const std::vector<int>& positions) {
  std::vector<double> out(x.begin(), x.end());
  const int half = d / 2;
  for (int r = 0; r < n; ++r) {
    for (int h = 0; h < heads; ++h) {
      const size_t base = (static_cast<size_t>(r) * heads + h) * d;
      for (int i = 0; i < half; ++i) {
        const double angle = positions[r] * std::pow(theta, -2.0 * i / d);
        const double a = x[base + i], b = x[base + i + half];
        out[base + i] = a * std::cos(angle) - b * std::sin(angle);
        out[base + i + half] = b * std::cos(angle) + a * std::sin(angle);
      }
    }
  }
  return out;
}

TEST(RopeTest, KnownValuesHeadDim4) {
  auto rope = RopeTable::Create(4, 10000.0, 8);
  ASSERT_TRUE(rope.ok()) << rope.status();
  std::vector<float> x = {1, 2, 3, 4};
  rope->Apply(x.data(), 1, 1, {1});
  // inv_freq = {1, 10000^(-1/2) = 0.01}; pairs (0, 2) and (1, 3).
  EXPECT_NEAR(x[0], 1 * std::cos(1.0) - 3 * std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[2], 3 * std::cos(1.0) + 1 * std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[1], 2 * std::cos(0.01) - 4 * std::sin(0.01), 1e-6);
  EXPECT_NEAR(x[3], 4 * std::cos(0.01) + 2 * std::sin(0.01), 1e-6);
}

TEST(RopeTest, PositionZeroIsIdentity) {
  auto rope = *RopeTable::Create(16, 1e6, 4);
  std::vector<float> x(2 * 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * i - 1.0f;
  const std::vector<float> before = x;
  rope.Apply(x.data(), 1, 2, {0});
  EXPECT_EQ(x, before);
}

class RopeShapeTest : public ::testing::TestWithParam<std::tuple<int, double>> {};

TEST_P(RopeShapeTest, MatchesFloat64Reference) {
  const auto [d, theta] = GetParam();
  const int n = 23, heads = 3, max_pos = 4096;
  auto rope = *RopeTable::Create(d, theta, max_pos);
  std::mt19937 rng(d);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> pos_dist(0, max_pos - 1);
  std::vector<float> x(static_cast<size_t>(n) * heads * d);
  for (float& v : x) v = normal(rng);
  std::vector<int> positions(n);
  for (int& p : positions) p = pos_dist(rng);
  positions[0] = max_pos - 1;
  const std::vector<double> want = Reference(x, n, heads, d, theta, positions);
  rope.Apply(x.data(), n, heads, positions);
  double max_err = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    max_err = std::max(max_err, std::abs(x[i] - want[i]) / std::max(std::abs(want[i]), 1.0));
  }
  EXPECT_LT(max_err, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Dims, RopeShapeTest,
                         ::testing::Values(std::make_tuple(16, 1e6), std::make_tuple(64, 1e4),
                                           std::make_tuple(128, 1e6), std::make_tuple(128, 5e5)));

TEST(RopeTest, StridedLeavesTheRestOfTheRowAlone) {
  // A fused [q(2 heads) | k(1 head) | v(1 head)] row; rotate only k.
  const int d = 8, row = 4 * d;
  auto rope = *RopeTable::Create(d, 1e4, 16);
  std::vector<float> qkv(3 * row);
  for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = std::sin(0.37 * i);
  std::vector<float> k_only(3 * d);
  for (int r = 0; r < 3; ++r) {
    for (int j = 0; j < d; ++j) k_only[r * d + j] = qkv[r * row + 2 * d + j];
  }
  const std::vector<float> before = qkv;
  const std::vector<int> positions = {3, 9, 15};
  rope.ApplyStrided(qkv.data() + 2 * d, 3, 1, row, positions);
  rope.Apply(k_only.data(), 3, 1, positions);
  for (int r = 0; r < 3; ++r) {
    for (int j = 0; j < row; ++j) {
      const float got = qkv[r * row + j];
      if (j >= 2 * d && j < 3 * d) {
        EXPECT_EQ(got, k_only[r * d + j - 2 * d]);
      } else {
        EXPECT_EQ(got, before[r * row + j]);
      }
    }
  }
}

TEST(RopeTest, DotProductDependsOnlyOnRelativePosition) {
  const int d = 32;
  auto rope = *RopeTable::Create(d, 1e4, 256);
  std::vector<float> q(d), k(d);
  for (int j = 0; j < d; ++j) {
    q[j] = std::cos(0.3 * j);
    k[j] = std::sin(0.7 * j + 0.1);
  }
  auto rotated_dot = [&](int pq, int pk) {
    std::vector<float> a = q, b = k;
    rope.Apply(a.data(), 1, 1, {pq});
    rope.Apply(b.data(), 1, 1, {pk});
    double dot = 0;
    for (int j = 0; j < d; ++j) dot += static_cast<double>(a[j]) * b[j];
    return dot;
  };
  EXPECT_NEAR(rotated_dot(10, 3), rotated_dot(107, 100), 1e-4);
  EXPECT_GT(std::abs(rotated_dot(10, 3) - rotated_dot(10, 4)), 1e-3);
}

TEST(RopeTest, CreateRejectsBadArguments) {
  EXPECT_EQ(RopeTable::Create(15, 1e4, 8).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RopeTable::Create(0, 1e4, 8).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RopeTable::Create(16, 0.0, 8).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RopeTable::Create(16, 1e4, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RopeDeathTest, PositionOutOfRangeAborts) {
  auto rope = *RopeTable::Create(4, 1e4, 8);
  std::vector<float> x(4, 1.0f);
  EXPECT_DEATH(rope.Apply(x.data(), 1, 1, {8}), "MOE_CHECK");
}

}  // namespace
}  // namespace moe::attention
