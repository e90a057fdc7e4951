// The CUDA expert backend: expert weights live on one GPU in BF16; each Run uploads the
// shards' activations, runs the fused gate+up GEMM and the down GEMM of every shard as two
// cuBLAS grouped GEMMs (cublasGemmGroupedBatchedEx, BF16 inputs, F32 accumulate and output;
// a loop of cublasGemmEx where grouped GEMM is unsupported), a fused SiLU-mul kernel between
// them, and copies the outputs back (combine, if asked, is applied on the host).
//
// Threads: as ExpertBackend says. Every entry point makes the configured device current on
// the calling thread. Run uses one non-blocking stream and returns after it is synchronised,
// so device memory of an expert unloaded concurrently is freed only after the Run holding it.
#ifndef MOE_EXPERT_SERVICE_BACKEND_CUDA_CUDA_BACKEND_H_
#define MOE_EXPERT_SERVICE_BACKEND_CUDA_CUDA_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "expert_service/backend/expert_backend.h"

namespace moe::expert {

// UNAVAILABLE when no CUDA device is usable (the driver or device is missing), with the
// runtime's reason; FAILED_PRECONDITION when device_ordinal is out of range.
absl::StatusOr<std::unique_ptr<ExpertBackend>> CreateCudaBackend(const BackendOptions& options);

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_BACKEND_CUDA_CUDA_BACKEND_H_
