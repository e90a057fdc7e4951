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

// Converts `n` F32 values to BF16 (round to nearest even); vectorised when the CPU has
// avx512_bf16.
void ConvertF32ToBf16(const float* src, int64_t n, uint16_t* dst);

// Converts `n` values of F32/BF16/F16 to F32.
void ConvertToF32(DType src_dtype, const void* src, int64_t n, float* dst);

}  // namespace moe::kernels

#endif  // MOE_MODEL_KERNELS_PACKED_LAYOUT_H_
