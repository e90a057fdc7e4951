// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 (see CMakeLists.txt).
#include "model/kernels/avx512_bf16_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "model/kernels/packed_layout.h"

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

// One k pair of coded weights (192 bytes: low bytes of vectors 0-1, of vectors 2-3, then the
// 4-bit codes of the high bytes) decoded into the four vectors of the plain layout.
inline void DecodePair(const uint8_t* p, __m512i table, __m512i low_nibbles,
                       __m512i (&out)[kVectors]) {
  const __m512i lo0 = _mm512_load_si512(reinterpret_cast<const void*>(p));
  const __m512i lo1 = _mm512_load_si512(reinterpret_cast<const void*>(p + 64));
  const __m512i codes = _mm512_load_si512(reinterpret_cast<const void*>(p + 128));
  const __m512i hi0 = _mm512_shuffle_epi8(table, _mm512_and_si512(codes, low_nibbles));
  const __m512i hi1 =
      _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(codes, 4), low_nibbles));
  out[0] = _mm512_unpacklo_epi8(lo0, hi0);
  out[1] = _mm512_unpackhi_epi8(lo0, hi0);
  out[2] = _mm512_unpacklo_epi8(lo1, hi1);
  out[3] = _mm512_unpackhi_epi8(lo1, hi1);
}

inline __m512i TableVector(const uint8_t* table) {
  // maskz form: the unmasked intrinsic trips a false -Wuninitialized in GCC 12.
  return _mm512_maskz_broadcast_i32x4(__mmask16(0xffff),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(table)));
}

// MicroKernel over coded weights: each k pair is decoded in registers once for all MR rows.
template <int MR>
inline void MicroKernelCoded(const uint8_t* block, const uint8_t* table, const uint32_t* x,
                             int64_t x_stride_pairs, int64_t k_pairs, __m512 (&acc)[MR][kVectors],
                             uint16_t* decoded, const uint8_t* prefetch) {
  for (int r = 0; r < MR; ++r) {
    for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const __m512i tv = TableVector(table);
  const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
  const uint8_t* w = block;
  for (int64_t p = 0; p < k_pairs; ++p, w += kCodedPairBytes) {
    if (prefetch != nullptr) {  // the next block's k pair p, into L2
      const char* next = reinterpret_cast<const char*>(prefetch) + p * kCodedPairBytes;
      _mm_prefetch(next, _MM_HINT_T1);
      _mm_prefetch(next + 64, _MM_HINT_T1);
      _mm_prefetch(next + 128, _MM_HINT_T1);
    }
    __m512i wv[kVectors];
    DecodePair(w, tv, low_nibbles, wv);
    if (decoded != nullptr) {  // kept for the block's other row chunks
      for (int v = 0; v < kVectors; ++v) {
        _mm512_store_si512(reinterpret_cast<void*>(decoded + p * kPairStride + v * 32), wv[v]);
      }
    }
    for (int r = 0; r < MR; ++r) {
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r * x_stride_pairs + p]));
      for (int v = 0; v < kVectors; ++v)
        acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)wv[v], xv);
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

template <int MR>
void RunRowsCoded(const Bf16GemmArgs& a, int64_t row0, const uint8_t* block, int64_t n0,
                  uint16_t* decoded, const uint8_t* prefetch) {
  __m512 acc[MR][kVectors];
  const auto* x = reinterpret_cast<const uint32_t*>(a.x) + row0 * (a.k_pad / 2);
  MicroKernelCoded<MR>(block, a.coded->table, x, a.k_pad / 2, a.k_pad / 2, acc, decoded, prefetch);
  StoreRows<MR>(a, row0, n0, acc);
}

// Rows [row0, row0 + rows) of one N-block, 1 <= rows <= MR: over the coded bytes
// `coded_block` when set (decoded in registers; also stored to `decoded` and `prefetch` pulled
// into L2 meanwhile, when set), else over the plain `block`.
template <int MR>
void RunChunk(const Bf16GemmArgs& a, int64_t row0, int64_t rows, const uint16_t* block,
              const uint8_t* coded_block, uint16_t* decoded, int64_t n0, const uint8_t* prefetch) {
  if constexpr (MR > 1) {
    if (rows < MR) {
      return RunChunk<MR - 1>(a, row0, rows, block, coded_block, decoded, n0, prefetch);
    }
  }
  if (coded_block != nullptr) {
    RunRowsCoded<MR>(a, row0, coded_block, n0, decoded, prefetch);
  } else {
    RunRows<MR>(a, row0, block, n0);
  }
}

// Adds the exceptions of N-block `b` (weights the codes cannot express) to every row of y.
void AddExceptions(const Bf16GemmArgs& a, int64_t b) {
  const CodedBf16Weights& c = *a.coded;
  for (int32_t i = c.exc_offsets[b]; i < c.exc_offsets[b + 1]; ++i) {
    const int64_t n = c.exc_n[i], k = c.exc_k[i];
    for (int64_t r = 0; r < a.m; ++r) {
      const uint16_t xb = a.x[r * a.k_pad + k];
      uint32_t bits = static_cast<uint32_t>(xb) << 16;
      float xv;
      __builtin_memcpy(&xv, &bits, sizeof(xv));
      a.y[r * a.n + n] += xv * c.exc_w[i];
    }
  }
}

}  // namespace

void Bf16GemmBlocks(const Bf16GemmArgs& a, int64_t block_begin, int64_t block_end) {
  const int64_t block_elems = a.k_pad * 64;
  const int64_t coded_bytes = a.k_pad / 2 * kCodedPairBytes;  // of one coded block
  // Coded weights: up to 6 rows (decode) decode each k pair in registers, weight bytes being
  // what bounds them. With more rows the first chunk also keeps the decoded block (in L2) for
  // the other chunks and pulls the next block's coded bytes into L2 while it computes.
  uint16_t* decoded = nullptr;
  if (a.coded != nullptr && a.m > 6) {
    thread_local std::unique_ptr<uint16_t, void (*)(void*)> buffer(nullptr, std::free);
    thread_local int64_t buffer_elems = 0;
    if (buffer_elems < block_elems) {
      buffer.reset(static_cast<uint16_t*>(std::aligned_alloc(64, block_elems * 2)));
      buffer_elems = block_elems;
    }
    decoded = buffer.get();
  }
  for (int64_t b = block_begin; b < block_end; ++b) {
    const uint16_t* block = a.coded != nullptr ? decoded : a.w + b * block_elems;
    const uint8_t* coded_block = a.coded != nullptr ? a.coded->data + b * coded_bytes : nullptr;
    const uint8_t* prefetch =
        decoded != nullptr && b + 1 < block_end ? coded_block + coded_bytes : nullptr;
    // Rows in chunks of 6 (24 accumulators + 4 weight vectors + 1 broadcast of 32 registers);
    // the block stays in L2 between chunks.
    for (int64_t row = 0; row < a.m; row += 6) {
      RunChunk<6>(a, row, std::min<int64_t>(6, a.m - row), block, coded_block, decoded, b * 64,
                  prefetch);
      coded_block = nullptr;  // the other chunks read the decoded block
      prefetch = nullptr;
    }
    if (a.coded != nullptr) AddExceptions(a, b);
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
