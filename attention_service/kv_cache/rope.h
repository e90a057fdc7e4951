// Rotary position embedding, Hugging Face "rotate-half" convention.
//
// For head_dim d and i in [0, d/2): inv_freq[i] = theta^(-2i/d), angle = position * inv_freq[i],
//   x'[i]       = x[i] * cos - x[i + d/2] * sin
//   x'[i + d/2] = x[i + d/2] * cos + x[i] * sin
// cos/sin tables are computed in double and stored as float, for positions [0, max_positions).
//
// Thread affinity: immutable after construction; Apply may run concurrently from any thread.
#ifndef MOE_ATTENTION_SERVICE_KV_CACHE_ROPE_H_
#define MOE_ATTENTION_SERVICE_KV_CACHE_ROPE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moe::attention {

class RopeTable {
 public:
  // head_dim even and > 0, theta > 0, max_positions > 0; else INVALID_ARGUMENT.
  static absl::StatusOr<RopeTable> Create(int head_dim, double theta, int max_positions);

  // Rotates x in place: x is [n, num_heads, head_dim] with rows `row_stride` floats apart
  // (row_stride >= num_heads * head_dim; lets q/k be rotated inside a fused qkv buffer);
  // positions has n entries, each in [0, max_positions) (else aborts).
  void ApplyStrided(float* x, int n, int num_heads, int64_t row_stride,
                    absl::Span<const int> positions) const;
  // Same with contiguous rows (row_stride = num_heads * head_dim).
  void Apply(float* x, int n, int num_heads, absl::Span<const int> positions) const {
    ApplyStrided(x, n, num_heads, static_cast<int64_t>(num_heads) * head_dim_, positions);
  }

  int head_dim() const { return head_dim_; }
  int max_positions() const { return max_positions_; }
  double theta() const { return theta_; }
  // cos / sin of (position, i) for i in [0, head_dim/2).
  const float* CosRow(int position) const { return &cos_[static_cast<size_t>(position) * half_]; }
  const float* SinRow(int position) const { return &sin_[static_cast<size_t>(position) * half_]; }

 private:
  RopeTable(int head_dim, double theta, int max_positions);

  int head_dim_;
  int half_;
  double theta_;
  int max_positions_;
  std::vector<float> cos_;  // [max_positions, head_dim / 2]
  std::vector<float> sin_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_KV_CACHE_ROPE_H_
