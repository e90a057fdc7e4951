// The CPU expert backend: the reference implementation of ExpertBackend.
//
// Each expert is packed once at Load into two moe::kernels::PackedLinear matrices: gate and up
// stacked as one [2*inter, hidden] matrix (one GEMM per shard instead of two) and down
// [hidden, inter]. Run computes, per shard, gate_up = x W_gu^T (one batched GEMM over the
// shard's tokens), h = silu(gate) * up in place, out = h W_down^T, then writes or combines.
//
// Threads: as ExpertBackend says. The expert map is behind a mutex and holds shared_ptrs; Run
// copies the pointers it needs under the lock, then computes without it, so Load/Unload never
// wait for a Run and never free an expert a Run is using. Packing in Load also runs outside
// the lock. Inside each Run, work uses the kernels' thread pool (model/kernels/thread_pool.h):
// when no shard holds more than 1/threads of the tokens (decode; balanced prefill), each shard
// runs whole on one thread (no hand-off per GEMM); otherwise shards run in turn with each GEMM
// split over the threads. Results are bit-identical either way.
#ifndef MOE_EXPERT_SERVICE_BACKEND_CPU_CPU_BACKEND_H_
#define MOE_EXPERT_SERVICE_BACKEND_CPU_CPU_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "expert_service/backend/expert_backend.h"

namespace moe::expert {

absl::StatusOr<std::unique_ptr<ExpertBackend>> CreateCpuBackend(const BackendOptions& options);

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_BACKEND_CPU_CPU_BACKEND_H_
