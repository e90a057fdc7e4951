#include "model/kernels/packed_layout.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <utility>

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

bool EncodeCodedBf16(const uint16_t* blocked, const BlockedShape& shape, CodedBf16* out,
                     int64_t min_ratio) {
  const size_t elements = shape.elements();
  // The table: 0x00 first, then the 15 most frequent other high bytes.
  int64_t count[256] = {};
  for (size_t i = 0; i < elements; ++i) ++count[blocked[i] >> 8];
  int order[255];
  for (int i = 0; i < 255; ++i) order[i] = i + 1;
  std::stable_sort(order, order + 255, [&](int a, int b) { return count[a] > count[b]; });
  uint8_t table[16] = {};
  int8_t code_of[256];
  std::memset(code_of, -1, sizeof(code_of));
  code_of[0] = 0;
  int64_t covered = count[0];
  for (int i = 0; i < 15; ++i) {
    table[i + 1] = static_cast<uint8_t>(order[i]);
    code_of[order[i]] = static_cast<int8_t>(i + 1);
    covered += count[order[i]];
  }
  const int64_t exceptions = static_cast<int64_t>(elements) - covered;
  if (exceptions * min_ratio > static_cast<int64_t>(elements)) return false;

  const int64_t blocks = shape.n_pad() / kBlockN, pairs = shape.k_pad() / 2;
  CodedBf16 c;
  std::memcpy(c.table, table, sizeof(table));
  c.data_bytes = static_cast<size_t>(blocks * pairs * kCodedPairBytes);
  c.data = AllocateAligned(c.data_bytes);
  c.exc_offsets.assign(static_cast<size_t>(blocks) + 1, 0);
  c.exc_n.reserve(exceptions);
  c.exc_k.reserve(exceptions);
  c.exc_w.reserve(exceptions);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t p = 0; p < pairs; ++p) {
      const uint16_t* src = blocked + (b * pairs + p) * (kBlockN * 2);
      uint8_t* dst = c.data.get() + (b * pairs + p) * kCodedPairBytes;
      // q = (n % 64) * 2 + k % 2 is word q % 32 of vector q / 32.
      for (int q = 0; q < kBlockN * 2; ++q) {
        const int v = q / 32, w = q % 32;
        const int pos = (w / 8) * 16 + (v % 2) * 8 + w % 8;
        const uint16_t value = src[q];
        int code = code_of[value >> 8];
        uint8_t low = static_cast<uint8_t>(value & 0xff);
        if (code < 0) {
          c.exc_n.push_back(static_cast<int32_t>(b * kBlockN + q / 2));
          c.exc_k.push_back(static_cast<int32_t>(p * 2 + q % 2));
          c.exc_w.push_back(Bf16ToF32(value));
          code = 0;
          low = 0;
        }
        dst[(v / 2) * 64 + pos] = low;
        dst[128 + pos] |= static_cast<uint8_t>(v / 2 == 0 ? code : code << 4);
      }
    }
    c.exc_offsets[b + 1] = static_cast<int32_t>(c.exc_n.size());
  }
  *out = std::move(c);
  return true;
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
