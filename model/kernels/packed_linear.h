// PackedLinear: one dense weight matrix, packed once, multiplied by F32 activations.
//
// The forward pass and the expert backends compute every projection through this class:
//   y[m, out] = x[m, in] * W^T (+ bias) (+ y when accumulating)
// with W given in Hugging Face layout ([out, in], row-major, as stored in safetensors).
//
// Numerics, by source dtype:
//   F32  -> packed as F32, F32 math (oneDNN f32 matmul, strict fp-math): matches a double
//           reference to ~1e-6 relative.
//   BF16 -> packed as BF16; activations are rounded to BF16 (round-to-nearest-even) and the
//           products are accumulated in F32 (vdpbf16ps / oneDNN bf16 matmul).
//   F16  -> packed as F32 by default (exact: every F16 value is an F32 value; twice the
//           bytes of the source), or as BF16 with PackedLinearOptions::f16_packing = kBF16
//           (lossy: 10 -> 7 mantissa bits; half the bytes).
//
// Ownership: construction copies the weights into anonymous memory owned by this object; no
// pointer into the caller's buffer (e.g. an mmap of a safetensors file) is kept.
//
// Threads: Forward is const and may be called concurrently from several threads. Each call
// spreads its work over the kernels' thread pool (thread_pool.h: the caller plus
// KernelThreads() - 1 workers; concurrent callers beyond the first run on their own thread).
#ifndef MOE_MODEL_KERNELS_PACKED_LINEAR_H_
#define MOE_MODEL_KERNELS_PACKED_LINEAR_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/dtype.h"

namespace moe::kernels {

// Which code computes PackedLinear::Forward.
enum class LinearImpl : uint8_t {
  kAuto,        // per M: the AVX512-BF16 kernel for small M when it applies, oneDNN otherwise
  kOneDnn,      // oneDNN matmul; weights reordered once into a blocked layout oneDNN chose
  kAvx512Bf16,  // hand-written vdpbf16ps GEMM (BF16-packed weights on a CPU with avx512_bf16)
  kReference,   // plain loops over the packed weights (tests, and CPUs without AVX512)
};

// How F16 source weights are packed (see the file comment).
enum class F16Packing : uint8_t { kF32, kBF16 };

struct PackedLinearOptions {
  LinearImpl impl = LinearImpl::kAuto;
  F16Packing f16_packing = F16Packing::kF32;
  // BF16-packed weights on the AVX512-BF16 kernel: for M up to this many rows, each activation
  // row is carried as two BF16 rows hi + lo (hi = bf16(x), lo = bf16(x - hi): ~16 mantissa
  // bits instead of 8) and the two products are summed in F32. Small M is bound by weight
  // bandwidth, so the doubled M costs little there, while bf16 rounding of activations (the
  // SwiGLU intermediate above all) is what flips MoE routing near-ties. 0 turns it off.
  int64_t split_activation_max_rows = 16;
  // BF16-packed weights on a CPU with avx512_bf16 (impl kAuto or kAvx512Bf16): store them
  // exponent-coded (packed_layout.h, CodedBf16: 12 bits per weight, lossless) when at most
  // 1/256 of them fall outside the 16-entry table, and compute every M with the hand-written
  // kernel (no oneDNN copy). Reads 25% fewer bytes per product, which is what bounds decode.
  // Results equal the plain BF16 kernel's bit for bit when no weight is an exception (each
  // exception is added after its block's product, so its rounding may differ in the last bit).
  bool coded_bf16 = false;
};

// What Forward does after the product.
struct LinearEpilogue {
  const float* bias = nullptr;  // [out] F32, added to every row; nullptr = no bias
  bool accumulate = false;      // true: y += x W^T (+ bias); false: y = x W^T (+ bias)
};

// A weight matrix [rows, cols] in caller memory (HF layout, row-major, dense).
struct MatrixView {
  DType dtype = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;  // out features
  int64_t cols = 0;  // in features
};

// Thread-safe for concurrent Forward calls; move-only.
class PackedLinear {
 public:
  // Packs W [out, in] of `dtype` (F32, BF16 or F16). INVALID_ARGUMENT on other dtypes,
  // non-positive sizes or a null pointer; FAILED_PRECONDITION if the options ask for an
  // implementation this CPU or this dtype cannot run.
  static absl::StatusOr<PackedLinear> Create(DType dtype, const void* data, int64_t out,
                                             int64_t in, const PackedLinearOptions& options = {});
  static absl::StatusOr<PackedLinear> Create(const MatrixView& w,
                                             const PackedLinearOptions& options = {});

  // Packs the row-concatenation of `parts` (all with the same dtype and cols) as one matrix
  // [sum(rows), cols]: e.g. an expert's gate and up projections as one [2*inter, hidden]
  // matrix, so Forward writes [gate | up] per row in one GEMM.
  static absl::StatusOr<PackedLinear> CreateStacked(absl::Span<const MatrixView> parts,
                                                    const PackedLinearOptions& options = {});

  PackedLinear(PackedLinear&&) noexcept;
  PackedLinear& operator=(PackedLinear&&) noexcept;
  ~PackedLinear();

  // y[m, out] (row stride `out`) = x[m, in] (row stride `in`) * W^T, then the epilogue.
  // m >= 0 (m == 0 does nothing). x and y must not overlap.
  void Forward(const float* x, int64_t m, float* y, const LinearEpilogue& epilogue = {}) const;

  // Work sharing for callers that run many small products at once (the CPU expert backend
  // spreads one MoE layer's experts over the kernels' threads in pieces this size): the output
  // features are cut into `parts` ranges of whole 64-feature blocks, and ForwardPart(..., part,
  // parts) writes only range `part` of every row of y (row stride `out`, as Forward), with
  // exactly the values Forward writes there. Different parts may run concurrently. Only the
  // per-block implementations can be cut: MaxParts(m) is how many parts a product of m rows
  // can be cut into (1 when oneDNN computes it). 1 <= parts <= MaxParts(m), 0 <= part < parts.
  int64_t MaxParts(int64_t m) const;
  void ForwardPart(const float* x, int64_t m, float* y, int64_t part, int64_t parts,
                   const LinearEpilogue& epilogue = {}) const;

  int64_t out_features() const;
  int64_t in_features() const;
  DType source_dtype() const;
  DType packed_dtype() const;   // kF32 or kBF16
  bool coded() const;           // BF16 weights stored exponent-coded (options.coded_bf16)
  int64_t coded_exceptions() const;  // weights kept aside by the coding (0 when not coded)
  size_t packed_bytes() const;  // bytes of packed weights held (all copies)
  // The implementation Forward uses for `m` rows (for benchmarks and logs).
  LinearImpl ImplFor(int64_t m) const;

 private:
  struct State;
  explicit PackedLinear(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

const char* LinearImplName(LinearImpl impl);

}  // namespace moe::kernels

#endif  // MOE_MODEL_KERNELS_PACKED_LINEAR_H_
