// oneDNN matmul over pre-packed weights (internal to moe_kernels; keeps dnnl.hpp out of
// every other header).
#ifndef MOE_MODEL_KERNELS_ONEDNN_MATMUL_H_
#define MOE_MODEL_KERNELS_ONEDNN_MATMUL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "model/kernels/packed_layout.h"
#include "model/kernels/packed_linear.h"

namespace moe::kernels::internal {

// y[m, n] = x[m, k] W^T with W held in the blocked layout oneDNN picks for it.
// Thread-safe: Forward may run concurrently (user-managed, per-thread scratchpads; the
// per-M primitive cache is behind a mutex).
class OneDnnMatmul {
 public:
  // BF16 weights already packed by PackBlockedBf16Rows into `blocked` (shape `shape`). If
  // oneDNN wants exactly that layout, the matmul borrows `blocked` (which must then outlive
  // this object) and *shares_blocked is set; otherwise it reorders into its own copy.
  static absl::StatusOr<std::unique_ptr<OneDnnMatmul>> CreateBf16(const uint16_t* blocked,
                                                                  const BlockedShape& shape,
                                                                  bool* shares_blocked);
  // F32 weights, dense row-major [n, k]; always copied into oneDNN's layout.
  static absl::StatusOr<std::unique_ptr<OneDnnMatmul>> CreateF32(const float* w, int64_t n,
                                                                 int64_t k);
  ~OneDnnMatmul();

  void Forward(const float* x, int64_t m, float* y, const LinearEpilogue& epilogue) const;
  size_t owned_bytes() const;

 private:
  struct Impl;
  explicit OneDnnMatmul(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::kernels::internal

#endif  // MOE_MODEL_KERNELS_ONEDNN_MATMUL_H_
