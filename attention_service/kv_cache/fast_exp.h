// exp for max-subtracted arguments, written so loops over it vectorise (no libm call).
//
// Used by the attention softmax and the sampler, where exp over whole rows is the hot loop.
#ifndef MOE_ATTENTION_SERVICE_KV_CACHE_FAST_EXP_H_
#define MOE_ATTENTION_SERVICE_KV_CACHE_FAST_EXP_H_

#include <algorithm>
#include <bit>
#include <cstdint>

namespace moe::attention {

// exp(x) in float for x <= 0; relative error ~2e-7 (Cody-Waite reduction by ln 2, then the
// Cephes expf polynomial). Returns exactly 0 for x < -87.3 (including -inf). Callers subtract
// the maximum first; x > 88 would overflow the exponent field.
inline float ExpNonPositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float xc = std::max(x, -87.3f);
  const float t = xc * kLog2e + kRound;
  const float n = t - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound);
  const float scale = std::bit_cast<float>((e + 127) << 23);
  return x < -87.3f ? 0.0f : p * scale;
}

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_KV_CACHE_FAST_EXP_H_
