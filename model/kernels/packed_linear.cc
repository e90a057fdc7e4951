#include "model/kernels/packed_linear.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/kernels/avx512_bf16_gemm.h"
#include "model/kernels/cpu_features.h"
#include "model/kernels/onednn_matmul.h"
#include "model/kernels/packed_layout.h"
#include "model/kernels/thread_pool.h"

namespace moe::kernels {
namespace {

// kAuto runs the AVX512-BF16 kernel for M up to this many rows and oneDNN above (measured
// with bench/expert_ffn_benchmark: see bench/README.md).
constexpr int64_t kCustomMaxRows = 64;
// Work chunks per thread for the AVX512-BF16 kernel.
constexpr int64_t kChunksPerThread = 4;

bool IsWeightDtype(DType d) { return d == DType::kF32 || d == DType::kBF16 || d == DType::kF16; }

DType PackedDtypeFor(DType source, const PackedLinearOptions& options) {
  if (source == DType::kBF16) return DType::kBF16;
  if (source == DType::kF16 && options.f16_packing == F16Packing::kBF16) return DType::kBF16;
  return DType::kF32;
}

}  // namespace

struct PackedLinear::State {
  int64_t n = 0;
  int64_t k = 0;
  DType source_dtype = DType::kF32;
  DType packed_dtype = DType::kF32;
  LinearImpl requested = LinearImpl::kAuto;
  int64_t split_max_rows = 0;  // PackedLinearOptions::split_activation_max_rows
  bool custom_ok = false;  // the blocked BF16 buffer is valid and the CPU can run the kernel
  BlockedShape shape;
  AlignedBuffer blocked;  // BF16 blocked layout (packed_layout.h), or null
  size_t blocked_bytes = 0;
  std::unique_ptr<CodedBf16> coded;  // exponent-coded BF16 (instead of `blocked`), or null
  AlignedBuffer plain;    // kReference: row-major [n, k] of packed_dtype, or null
  size_t plain_bytes = 0;
  std::unique_ptr<internal::OneDnnMatmul> onednn;

  LinearImpl Choose(int64_t m) const {
    switch (requested) {
      case LinearImpl::kAuto:
        if (custom_ok && m <= kCustomMaxRows) return LinearImpl::kAvx512Bf16;
        return LinearImpl::kOneDnn;
      default: return requested;
    }
  }

  int64_t blocks() const { return shape.n_pad() / kBlockN; }
  // Output blocks [b0, b1) (64 features each) of every row.
  void ForwardCustom(const float* x, int64_t m, float* y, const LinearEpilogue& e, int64_t b0,
                     int64_t b1) const;
  void ForwardReference(const float* x, int64_t m, float* y, const LinearEpilogue& e, int64_t b0,
                        int64_t b1) const;
};

PackedLinear::PackedLinear(std::unique_ptr<State> state) : state_(std::move(state)) {}
PackedLinear::PackedLinear(PackedLinear&&) noexcept = default;
PackedLinear& PackedLinear::operator=(PackedLinear&&) noexcept = default;
PackedLinear::~PackedLinear() = default;

absl::StatusOr<PackedLinear> PackedLinear::Create(DType dtype, const void* data, int64_t out,
                                                  int64_t in, const PackedLinearOptions& options) {
  MatrixView view{dtype, data, out, in};
  return CreateStacked(absl::MakeConstSpan(&view, 1), options);
}

absl::StatusOr<PackedLinear> PackedLinear::Create(const MatrixView& w,
                                                  const PackedLinearOptions& options) {
  return CreateStacked(absl::MakeConstSpan(&w, 1), options);
}

absl::StatusOr<PackedLinear> PackedLinear::CreateStacked(absl::Span<const MatrixView> parts,
                                                         const PackedLinearOptions& options) {
  if (parts.empty()) return absl::InvalidArgumentError("PackedLinear: no weight matrices");
  auto st = std::make_unique<State>();
  st->source_dtype = parts[0].dtype;
  st->k = parts[0].cols;
  for (const MatrixView& p : parts) {
    if (!IsWeightDtype(p.dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("PackedLinear: unsupported weight dtype ", std::string(DTypeName(p.dtype))));
    }
    if (p.dtype != st->source_dtype) {
      return absl::InvalidArgumentError("PackedLinear: stacked parts differ in dtype");
    }
    if (p.rows <= 0 || p.cols <= 0 || p.data == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("PackedLinear: bad matrix [", p.rows, ", ",
                                                     p.cols, "] or null data"));
    }
    if (p.cols != st->k) {
      return absl::InvalidArgumentError(absl::StrCat("PackedLinear: stacked parts have ",
                                                     p.cols, " and ", st->k, " columns"));
    }
    st->n += p.rows;
  }
  if (st->n > (int64_t{1} << 31) || st->k > (int64_t{1} << 31)) {
    return absl::InvalidArgumentError("PackedLinear: matrix too large");
  }
  st->packed_dtype = PackedDtypeFor(st->source_dtype, options);
  st->requested = options.impl;
  st->split_max_rows = options.split_activation_max_rows;
  st->shape = BlockedShape{st->n, st->k};
  const bool bf16 = st->packed_dtype == DType::kBF16;

  if (options.impl == LinearImpl::kAvx512Bf16 && (!bf16 || !HasAvx512Bf16())) {
    return absl::FailedPreconditionError(
        bf16 ? "PackedLinear: this CPU lacks avx512_bf16"
             : "PackedLinear: the AVX512-BF16 kernel needs BF16-packed weights");
  }

  if (options.impl == LinearImpl::kReference) {
    const size_t elem = DTypeSize(st->packed_dtype);
    st->plain_bytes = static_cast<size_t>(st->n * st->k) * elem;
    st->plain = AllocateAligned(st->plain_bytes);
    int64_t row0 = 0;
    for (const MatrixView& p : parts) {
      const int64_t count = p.rows * p.cols;
      if (bf16) {
        auto* dst = reinterpret_cast<uint16_t*>(st->plain.get()) + row0 * st->k;
        if (p.dtype == DType::kBF16) {
          std::memcpy(dst, p.data, static_cast<size_t>(count) * 2);
        } else {  // F16 -> BF16 through F32
          const auto* s = static_cast<const uint16_t*>(p.data);
          for (int64_t i = 0; i < count; ++i) dst[i] = F32ToBf16(F16ToF32(s[i]));
        }
      } else {
        ConvertToF32(p.dtype, p.data, count,
                     reinterpret_cast<float*>(st->plain.get()) + row0 * st->k);
      }
      row0 += p.rows;
    }
    return PackedLinear(std::move(st));
  }

  if (bf16) {
    st->blocked_bytes = st->shape.elements() * 2;
    st->blocked = AllocateAligned(st->blocked_bytes);
    auto* dst = reinterpret_cast<uint16_t*>(st->blocked.get());
    int64_t row0 = 0;
    for (const MatrixView& p : parts) {
      PackBlockedBf16Rows(p.dtype, p.data, p.rows, row0, st->shape, dst);
      row0 += p.rows;
    }
    st->custom_ok = HasAvx512Bf16();
    if (options.coded_bf16 && st->custom_ok &&
        (options.impl == LinearImpl::kAuto || options.impl == LinearImpl::kAvx512Bf16)) {
      auto coded = std::make_unique<CodedBf16>();
      if (EncodeCodedBf16(dst, st->shape, coded.get())) {
        st->coded = std::move(coded);
        st->blocked.reset();
        st->blocked_bytes = 0;
        if (st->requested == LinearImpl::kAuto) st->requested = LinearImpl::kAvx512Bf16;
        return PackedLinear(std::move(st));
      }
    }
    if (options.impl != LinearImpl::kAvx512Bf16) {
      bool shares = false;
      MOE_ASSIGN_OR_RETURN(st->onednn, internal::OneDnnMatmul::CreateBf16(dst, st->shape, &shares));
      if (!shares) {  // oneDNN made its own copy: keep one copy only
        st->blocked.reset();
        st->blocked_bytes = 0;
        st->custom_ok = false;
      }
    }
    return PackedLinear(std::move(st));
  }

  // F32 packing (F32 source, or F16 widened exactly).
  if (options.impl != LinearImpl::kOneDnn && options.impl != LinearImpl::kAuto) {
    return absl::InternalError("PackedLinear: unreachable implementation choice");
  }
  std::vector<float> dense;
  const float* source = nullptr;
  if (parts.size() == 1 && parts[0].dtype == DType::kF32) {
    source = static_cast<const float*>(parts[0].data);
  } else {
    dense.resize(static_cast<size_t>(st->n * st->k));
    int64_t row0 = 0;
    for (const MatrixView& p : parts) {
      ConvertToF32(p.dtype, p.data, p.rows * p.cols, dense.data() + row0 * st->k);
      row0 += p.rows;
    }
    source = dense.data();
  }
  MOE_ASSIGN_OR_RETURN(st->onednn, internal::OneDnnMatmul::CreateF32(source, st->n, st->k));
  return PackedLinear(std::move(st));
}

void PackedLinear::State::ForwardCustom(const float* x, int64_t m, float* y,
                                        const LinearEpilogue& e, int64_t b0, int64_t b1) const {
  thread_local AlignedBuffer xb_buffer;
  thread_local size_t xb_size = 0;
  thread_local std::vector<float> split_y;
  const bool split = m <= split_max_rows;
  const int64_t rows = split ? 2 * m : m;  // split: rows [0, m) hold hi, [m, 2m) hold lo
  const int64_t k_pad = shape.k_pad();
  const size_t need = static_cast<size_t>(rows * k_pad) * 2;
  if (need > xb_size) {
    xb_buffer = AllocateAligned(need);
    xb_size = need;
  }
  auto* xb = reinterpret_cast<uint16_t*>(xb_buffer.get());
  for (int64_t r = 0; r < m; ++r) {
    uint16_t* hi = xb + r * k_pad;
    internal::ConvertF32ToBf16Avx512(x + r * k, k, hi);
    std::memset(hi + k, 0, static_cast<size_t>(k_pad - k) * 2);
    if (split) {
      uint16_t* lo = xb + (m + r) * k_pad;
      for (int64_t c = 0; c < k; ++c) lo[c] = F32ToBf16(x[r * k + c] - Bf16ToF32(hi[c]));
      std::memset(lo + k, 0, static_cast<size_t>(k_pad - k) * 2);
    }
  }
  internal::Bf16GemmArgs args;
  internal::CodedBf16Weights coded_view;
  if (coded != nullptr) {
    coded_view = {coded->data.get(),   coded->table,        coded->exc_offsets.data(),
                  coded->exc_n.data(), coded->exc_k.data(), coded->exc_w.data()};
    args.coded = &coded_view;
  } else {
    args.w = reinterpret_cast<const uint16_t*>(blocked.get());
  }
  args.n = n;
  args.k_pad = k_pad;
  args.x = xb;
  args.m = rows;
  if (split) {
    split_y.resize(static_cast<size_t>(rows * n));
    args.y = split_y.data();
  } else {
    args.y = y;
    args.bias = e.bias;
    args.accumulate = e.accumulate;
  }
  // Chunks of whole 64-output blocks, a few per thread so a busy core sheds its share (inline
  // when this already runs on one of the pool's threads).
  const int64_t blocks = b1 - b0;
  const int64_t chunks = std::min<int64_t>(blocks, KernelThreads() * kChunksPerThread);
  ParallelFor(chunks, [&](int64_t i) {
    internal::Bf16GemmBlocks(args, b0 + blocks * i / chunks, b0 + blocks * (i + 1) / chunks);
  });
  if (split) {
    const int64_t o0 = b0 * kBlockN, o1 = std::min(n, b1 * kBlockN);
    for (int64_t r = 0; r < m; ++r) {
      const float* hi = &split_y[r * n];
      const float* lo = &split_y[(m + r) * n];
      float* out = y + r * n;
      for (int64_t o = o0; o < o1; ++o) {
        float v = hi[o] + lo[o] + (e.bias != nullptr ? e.bias[o] : 0.0f);
        out[o] = e.accumulate ? out[o] + v : v;
      }
    }
  }
}

void PackedLinear::State::ForwardReference(const float* x, int64_t m, float* y,
                                           const LinearEpilogue& e, int64_t b0, int64_t b1) const {
  const bool bf16 = packed_dtype == DType::kBF16;
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      row[c] = bf16 ? Bf16ToF32(F32ToBf16(x[r * k + c])) : x[r * k + c];
    }
    for (int64_t o = b0 * kBlockN; o < std::min(n, b1 * kBlockN); ++o) {
      float sum = 0.0f;
      if (bf16) {
        const auto* w = reinterpret_cast<const uint16_t*>(plain.get()) + o * k;
        for (int64_t c = 0; c < k; ++c) sum += row[c] * Bf16ToF32(w[c]);
      } else {
        const auto* w = reinterpret_cast<const float*>(plain.get()) + o * k;
        for (int64_t c = 0; c < k; ++c) sum += row[c] * w[c];
      }
      if (e.bias != nullptr) sum += e.bias[o];
      float& out = y[r * n + o];
      out = e.accumulate ? out + sum : sum;
    }
  }
}

void PackedLinear::Forward(const float* x, int64_t m, float* y,
                           const LinearEpilogue& epilogue) const {
  ForwardPart(x, m, y, 0, 1, epilogue);
}

int64_t PackedLinear::MaxParts(int64_t m) const {
  switch (state_->Choose(m)) {
    case LinearImpl::kAvx512Bf16:
    case LinearImpl::kReference:
      return state_->blocks();
    default:
      return 1;
  }
}

void PackedLinear::ForwardPart(const float* x, int64_t m, float* y, int64_t part, int64_t parts,
                               const LinearEpilogue& epilogue) const {
  MOE_CHECK(m >= 0);
  MOE_CHECK(parts >= 1 && part >= 0 && part < parts && (parts == 1 || parts <= MaxParts(m)));
  if (m == 0) return;
  const int64_t blocks = state_->blocks();
  const int64_t b0 = blocks * part / parts, b1 = blocks * (part + 1) / parts;
  switch (state_->Choose(m)) {
    case LinearImpl::kAvx512Bf16:
      state_->ForwardCustom(x, m, y, epilogue, b0, b1);
      return;
    case LinearImpl::kReference:
      state_->ForwardReference(x, m, y, epilogue, b0, b1);
      return;
    default: state_->onednn->Forward(x, m, y, epilogue); return;
  }
}

int64_t PackedLinear::out_features() const { return state_->n; }
int64_t PackedLinear::in_features() const { return state_->k; }
DType PackedLinear::source_dtype() const { return state_->source_dtype; }
DType PackedLinear::packed_dtype() const { return state_->packed_dtype; }
size_t PackedLinear::packed_bytes() const {
  return state_->blocked_bytes + state_->plain_bytes +
         (state_->coded != nullptr ? state_->coded->bytes() : 0) +
         (state_->onednn != nullptr ? state_->onednn->owned_bytes() : 0);
}
bool PackedLinear::coded() const { return state_->coded != nullptr; }
int64_t PackedLinear::coded_exceptions() const {
  return state_->coded != nullptr ? static_cast<int64_t>(state_->coded->exc_n.size()) : 0;
}
LinearImpl PackedLinear::ImplFor(int64_t m) const { return state_->Choose(m); }

const char* LinearImplName(LinearImpl impl) {
  switch (impl) {
    case LinearImpl::kAuto: return "auto";
    case LinearImpl::kOneDnn: return "onednn";
    case LinearImpl::kAvx512Bf16: return "avx512_bf16";
    case LinearImpl::kReference: return "reference";
  }
  return "?";
}

}  // namespace moe::kernels
