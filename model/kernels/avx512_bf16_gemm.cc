// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 (see CMakeLists.txt).
#include "model/kernels/avx512_bf16_gemm.h"

#include <immintrin.h>

#include <algorithm>

namespace moe::kernels::internal {
namespace {

constexpr int kVectors = 4;         // 64 outputs per N-block = 4 x 16 lanes
constexpr int64_t kPairStride = 128;  // bf16 elements per k pair inside a block

// Rows [0, MR) of x against one N-block: MR x 4 accumulators over all k pairs.
template <int MR>
inline void MicroKernel(const uint16_t* block, const uint32_t* x, int64_t x_stride_pairs,
                        int64_t k_pairs, __m512 (&acc)[MR][kVectors]) {
  for (int r = 0; r < MR; ++r) {
    for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const uint16_t* w = block;
  for (int64_t p = 0; p < k_pairs; ++p, w += kPairStride) {
    __m512bh wv[kVectors];
    for (int v = 0; v < kVectors; ++v) {
      wv[v] = (__m512bh)_mm512_load_si512(reinterpret_cast<const void*>(w + v * 32));
    }
    for (int r = 0; r < MR; ++r) {
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r * x_stride_pairs + p]));
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], wv[v], xv);
    }
  }
}

template <int MR>
inline void StoreRows(const Bf16GemmArgs& a, int64_t row0, int64_t n0,
                      __m512 (&acc)[MR][kVectors]) {
  for (int v = 0; v < kVectors; ++v) {
    const int64_t n = n0 + v * 16;
    if (n >= a.n) break;
    const int64_t left = a.n - n;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    const __m512 bias =
        a.bias != nullptr ? _mm512_maskz_loadu_ps(mask, a.bias + n) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) {
      float* out = a.y + (row0 + r) * a.n + n;
      __m512 value = _mm512_add_ps(acc[r][v], bias);
      if (a.accumulate) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, out));
      _mm512_mask_storeu_ps(out, mask, value);
    }
  }
}

template <int MR>
void RunRows(const Bf16GemmArgs& a, int64_t row0, const uint16_t* block, int64_t n0) {
  __m512 acc[MR][kVectors];
  const auto* x = reinterpret_cast<const uint32_t*>(a.x) + row0 * (a.k_pad / 2);
  MicroKernel<MR>(block, x, a.k_pad / 2, a.k_pad / 2, acc);
  StoreRows<MR>(a, row0, n0, acc);
}

}  // namespace

void Bf16GemmBlocks(const Bf16GemmArgs& a, int64_t block_begin, int64_t block_end) {
  const int64_t block_elems = a.k_pad * 64;
  for (int64_t b = block_begin; b < block_end; ++b) {
    const uint16_t* block = a.w + b * block_elems;
    const int64_t n0 = b * 64;
    int64_t row = 0;
    // Rows in chunks of 6 (24 accumulators + 4 weight vectors + 1 broadcast of 32 registers);
    // the block stays in L2 between chunks.
    for (; row + 6 <= a.m; row += 6) RunRows<6>(a, row, block, n0);
    switch (a.m - row) {
      case 5: RunRows<5>(a, row, block, n0); break;
      case 4: RunRows<4>(a, row, block, n0); break;
      case 3: RunRows<3>(a, row, block, n0); break;
      case 2: RunRows<2>(a, row, block, n0); break;
      case 1: RunRows<1>(a, row, block, n0); break;
      default: break;
    }
  }
}

void ConvertF32ToBf16Avx512(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), (__m256i)v);
  }
  if (i < n) {
    const __mmask16 mask = __mmask16((1u << (n - i)) - 1);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + i));
    _mm256_mask_storeu_epi16(dst + i, mask, (__m256i)v);
  }
}

}  // namespace moe::kernels::internal
