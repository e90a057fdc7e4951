// The blocked weight layout PackedLinear's BF16 kernels share (internal to moe_kernels).
//
// For W [N = out, K = in] the packed BF16 buffer is oneDNN's "BA16a64b2a" layout of W^T [K, N]:
// N is cut into blocks of kBlockN = 64 outputs, K is padded to a multiple of kBlockK = 32 and
// each N-block is [Kpad / 2][64][2]: element (k, n) of W^T sits at
//   (n / 64) * Kpad * 64 + (k / 2) * 128 + (n % 64) * 2 + (k % 2).
// Padding (k >= K or n >= N) is zero. One 64-byte vector holds 16 outputs x one k pair, which
// is what vdpbf16ps multiplies against a broadcast pair of activations.
#ifndef MOE_MODEL_KERNELS_PACKED_LAYOUT_H_
#define MOE_MODEL_KERNELS_PACKED_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "model/dtype.h"

namespace moe::kernels {

inline constexpr int64_t kBlockN = 64;
inline constexpr int64_t kBlockK = 32;

inline int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// 64-byte aligned heap buffer (anonymous memory), zero-initialised.
struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t[], AlignedFree>;
AlignedBuffer AllocateAligned(size_t bytes);

// Geometry of one packed matrix.
struct BlockedShape {
  int64_t n = 0;  // out features
  int64_t k = 0;  // in features
  int64_t n_pad() const { return RoundUp(n, kBlockN); }
  int64_t k_pad() const { return RoundUp(k, kBlockK); }
  size_t elements() const { return static_cast<size_t>(n_pad() * k_pad()); }
};

// Writes rows [row0, row0 + rows) of the packed matrix `dst` (shape `shape`) from a dense
// row-major [rows, shape.k] source of dtype F32, BF16 or F16 (converted to BF16 with
// round-to-nearest-even). `dst` must be zeroed beforehand (padding stays zero).
void PackBlockedBf16Rows(DType src_dtype, const void* src, int64_t rows, int64_t row0,
                         const BlockedShape& shape, uint16_t* dst);

// Exponent-coded BF16: the blocked layout above in 12 bits per weight instead of 16, lossless.
// A BF16 value's low byte (exponent LSB + 7 mantissa bits) is kept as is; its high byte (sign +
// 7 exponent MSBs) takes few values in a weight matrix (trained or random: the exponents of
// one matrix span a few binades), so it is stored as a 4-bit index into a per-matrix table of
// 16 high bytes. Entry 0 is always 0x00. A weight whose high byte is not in the table is an
// exception: its slot holds +0 (code 0, low byte 0) and its value is kept aside, added to the
// outputs after the block's product. Decoding is two byte shuffles and four unpacks per
// 128 weights (avx512_bf16_gemm.cc: in registers; with more than 6 rows the first row chunk
// also keeps the decoded block in L2 for the others), so at decode batch sizes, where streaming
// the weights is the bound, a product reads 25% fewer bytes.
//
// Per N-block and k pair (128 BF16 values = 4 vectors of the blocked layout), 192 bytes:
//   [0, 64)    low bytes of vectors 0 and 1, [64, 128) low bytes of vectors 2 and 3,
//   [128, 192) codes: low nibble for vectors 0-1, high nibble for vectors 2-3,
// ordered so that vpunpck{l,h}bw of the low bytes with the looked-up high bytes rebuilds the
// vectors: word w of vector v comes from byte (w / 8) * 16 + (v % 2) * 8 + w % 8 of its half.
struct CodedBf16 {
  AlignedBuffer data;  // [n_pad / 64][k_pad / 2][192]
  size_t data_bytes = 0;
  uint8_t table[16] = {};
  std::vector<int32_t> exc_offsets;  // [n_pad / 64 + 1]
  std::vector<int32_t> exc_n, exc_k;
  std::vector<float> exc_w;
  size_t bytes() const { return data_bytes + exc_offsets.size() * 4 + exc_n.size() * 12; }
};
inline constexpr int64_t kCodedPairBytes = 192;

// Codes the blocked BF16 matrix `blocked` (shape `shape`). Returns false, leaving `out`
// untouched, if more than 1/`min_ratio` of the weights would be exceptions (the exponents are
// too spread for a 16-entry table to pay).
bool EncodeCodedBf16(const uint16_t* blocked, const BlockedShape& shape, CodedBf16* out,
                     int64_t min_ratio = 256);

// Converts `n` F32 values to BF16 (round to nearest even); vectorised when the CPU has
// avx512_bf16.
void ConvertF32ToBf16(const float* src, int64_t n, uint16_t* dst);

// Converts `n` values of F32/BF16/F16 to F32.
void ConvertToF32(DType src_dtype, const void* src, int64_t n, float* dst);

}  // namespace moe::kernels

#endif  // MOE_MODEL_KERNELS_PACKED_LAYOUT_H_
