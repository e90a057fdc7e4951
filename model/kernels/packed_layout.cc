#include "model/kernels/packed_layout.h"

#include <sys/mman.h>

#include <cstring>

#include "model/kernels/avx512_bf16_gemm.h"
#include "model/kernels/cpu_features.h"

namespace moe::kernels {

AlignedBuffer AllocateAligned(size_t bytes) {
  // Large buffers (packed weights) get 2 MiB alignment and transparent huge pages when the
  // kernel offers them (THP "madvise" mode): streaming weights at batch 1 touches every page
  // once per token, and 4 KiB pages cost a TLB miss each.
  constexpr size_t kHuge = size_t{2} << 20;
  const bool huge = bytes >= 2 * kHuge;
  const size_t align = huge ? kHuge : 64;
  size_t rounded = static_cast<size_t>(RoundUp(static_cast<int64_t>(bytes), align));
  if (rounded == 0) rounded = align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) std::abort();  // no swap: running out of memory is fatal anyway
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advisory: failure is harmless
  std::memset(p, 0, rounded);
  return AlignedBuffer(static_cast<uint8_t*>(p));
}

namespace {

uint16_t ToBf16(DType dtype, const void* src, int64_t i) {
  switch (dtype) {
    case DType::kBF16: return static_cast<const uint16_t*>(src)[i];
    case DType::kF16: return F32ToBf16(F16ToF32(static_cast<const uint16_t*>(src)[i]));
    default: return F32ToBf16(static_cast<const float*>(src)[i]);
  }
}

}  // namespace

void PackBlockedBf16Rows(DType src_dtype, const void* src, int64_t rows, int64_t row0,
                         const BlockedShape& shape, uint16_t* dst) {
  const int64_t k_pad = shape.k_pad();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = row0 + r;
    uint16_t* block = dst + (n / kBlockN) * k_pad * kBlockN + (n % kBlockN) * 2;
    const int64_t base = r * shape.k;
    for (int64_t k = 0; k < shape.k; ++k) {
      block[(k / 2) * (kBlockN * 2) + (k % 2)] = ToBf16(src_dtype, src, base + k);
    }
  }
}

void ConvertF32ToBf16(const float* src, int64_t n, uint16_t* dst) {
  if (HasAvx512Bf16()) {
    internal::ConvertF32ToBf16Avx512(src, n, dst);
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = F32ToBf16(src[i]);
}

void ConvertToF32(DType src_dtype, const void* src, int64_t n, float* dst) {
  switch (src_dtype) {
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToF32(s[i]);
      return;
    }
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
      return;
    }
    default: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
}

}  // namespace moe::kernels
