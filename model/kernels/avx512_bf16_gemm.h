// Hand-written AVX512-BF16 (vdpbf16ps) GEMM over the packed layout of packed_layout.h
// (internal to moe_kernels). Only call after HasAvx512Bf16() returned true: this file is the
// only one compiled with -mavx512bf16.
#ifndef MOE_MODEL_KERNELS_AVX512_BF16_GEMM_H_
#define MOE_MODEL_KERNELS_AVX512_BF16_GEMM_H_

#include <cstdint>

namespace moe::kernels::internal {

// Exponent-coded BF16 (packed_layout.h, CodedBf16): per N-block and k pair, 192 bytes.
struct CodedBf16Weights {
  const uint8_t* data = nullptr;         // [n_pad / 64][k_pad / 2][192]
  const uint8_t* table = nullptr;        // 16 high bytes, indexed by the 4-bit codes
  const int32_t* exc_offsets = nullptr;  // [n_pad / 64 + 1]: exceptions of each N-block
  const int32_t* exc_n = nullptr;        // output feature of each exception
  const int32_t* exc_k = nullptr;        // input feature of each exception
  const float* exc_w = nullptr;          // its weight (the coded slot decodes to +0)
};

struct Bf16GemmArgs {
  const uint16_t* w = nullptr;  // packed [n_pad / 64][k_pad / 2][64][2]; null when `coded`
  const CodedBf16Weights* coded = nullptr;  // set instead of w for exponent-coded weights
  int64_t n = 0;                // out features
  int64_t k_pad = 0;            // in features rounded up to 32
  const uint16_t* x = nullptr;  // activations, BF16 [m][k_pad], zero past k, 64-byte aligned
  int64_t m = 0;
  float* y = nullptr;  // [m][n]
  const float* bias = nullptr;
  bool accumulate = false;
};

// y rows [0, m) for the outputs of N-blocks [block_begin, block_end) (64 outputs each).
// Different block ranges touch disjoint parts of y: threads split the blocks between them.
void Bf16GemmBlocks(const Bf16GemmArgs& args, int64_t block_begin, int64_t block_end);

// Round-to-nearest-even F32 -> BF16 with vcvtneps2bf16.
void ConvertF32ToBf16Avx512(const float* src, int64_t n, uint16_t* dst);

}  // namespace moe::kernels::internal

#endif  // MOE_MODEL_KERNELS_AVX512_BF16_GEMM_H_
