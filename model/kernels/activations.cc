#include "model/kernels/activations.h"

#include <cstdint>
#include <cstring>

namespace moe::kernels {
namespace {

// exp(x) for F32 without branches so loops over it vectorise: Cephes' expf polynomial after
// reduction by ln 2 (relative error ~2e-7 over the clamped range [-87.3, 88.7]).
inline float FastExp(float x) {
  x = x < 88.7f ? x : 88.7f;
  x = x > -87.3f ? x : -87.3f;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline float SiluInline(float v) { return v / (1.0f + FastExp(-v)); }

}  // namespace

float Silu(float v) { return SiluInline(v); }

// target_clones: one AVX512 and one baseline copy, picked at load time (ifunc).
__attribute__((target_clones("avx512f", "avx2", "default"))) void SiluMul(const float* gate,
                                                                          const float* up,
                                                                          int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = SiluInline(gate[i]) * up[i];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void SiluMulStacked(
    const float* gate_up, int64_t rows, int64_t inter, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * inter;
    const float* u = g + inter;
    float* o = out + r * inter;
    // In place, row r >= 1 writes [r*inter, (r+1)*inter), which ends before its source row
    // starts; row 0 reads element i before writing it. The compiler's alias checks keep
    // vectorisation correct in both cases.
    for (int64_t i = 0; i < inter; ++i) o[i] = SiluInline(g[i]) * u[i];
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void Axpy(float alpha,
                                                                       const float* x, int64_t n,
                                                                       float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace moe::kernels
