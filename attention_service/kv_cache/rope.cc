#include "attention_service/kv_cache/rope.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::attention {

absl::StatusOr<RopeTable> RopeTable::Create(int head_dim, double theta, int max_positions) {
  if (head_dim <= 0 || head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RoPE: head_dim must be positive and even, got ", head_dim));
  }
  if (!(theta > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("RoPE: theta must be positive, got ", theta));
  }
  if (max_positions <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RoPE: max_positions must be positive, got ", max_positions));
  }
  return RopeTable(head_dim, theta, max_positions);
}

RopeTable::RopeTable(int head_dim, double theta, int max_positions)
    : head_dim_(head_dim), half_(head_dim / 2), theta_(theta), max_positions_(max_positions) {
  cos_.resize(static_cast<size_t>(max_positions) * half_);
  sin_.resize(cos_.size());
  std::vector<double> inv_freq(half_);
  for (int i = 0; i < half_; ++i) {
    inv_freq[i] = std::pow(theta, -2.0 * i / head_dim);
  }
  for (int p = 0; p < max_positions; ++p) {
    for (int i = 0; i < half_; ++i) {
      const double angle = static_cast<double>(p) * inv_freq[i];
      cos_[static_cast<size_t>(p) * half_ + i] = static_cast<float>(std::cos(angle));
      sin_[static_cast<size_t>(p) * half_ + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void RopeTable::ApplyStrided(float* x, int n, int num_heads, int64_t row_stride,
                             absl::Span<const int> positions) const {
  MOE_CHECK(n >= 0 && static_cast<size_t>(n) == positions.size());
  MOE_CHECK(row_stride >= static_cast<int64_t>(num_heads) * head_dim_);
  const int half = half_;
  for (int r = 0; r < n; ++r) {
    const int pos = positions[r];
    MOE_CHECK(pos >= 0 && pos < max_positions_);
    const float* c = CosRow(pos);
    const float* s = SinRow(pos);
    float* row = x + r * row_stride;
    for (int h = 0; h < num_heads; ++h) {
      float* lo = row + static_cast<int64_t>(h) * head_dim_;
      float* hi = lo + half;
      for (int i = 0; i < half; ++i) {
        const float a = lo[i];
        const float b = hi[i];
        lo[i] = a * c[i] - b * s[i];
        hi[i] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace moe::attention
