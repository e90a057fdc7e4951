// ExpertBackend: the compute behind an expert service. It holds a set of (layer, expert)
// SwiGLU FFN weights and runs them on token shards:
//   out = down( silu(gate x) * (up x) )   with gate/up [inter, hidden] and down [hidden, inter]
// (HF Mixtral names: w1 = gate, w3 = up, w2 = down). Activations are F32 row-major.
//
// Backends are leaves: "cpu" (the reference, oneDNN / AVX512-BF16 via moe_kernels) is always
// built; "cuda" (cuBLAS, BF16 with F32 accumulate) when the toolkit was found. Only the registry
// (expert_backend_registry.cc) knows which were built.
//
// Threads: Run is called from one thread at a time per instance. Load, Unload, Has and Describe
// may be called from other threads while Run is running (make-before-break rebalancing): an
// expert unloaded during a Run stays alive until that Run returns.
#ifndef MOE_EXPERT_SERVICE_BACKEND_EXPERT_BACKEND_H_
#define MOE_EXPERT_SERVICE_BACKEND_EXPERT_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/dtype.h"

namespace moe::expert {

// A tensor in caller memory (e.g. an mmap of a safetensors file). Only read during Load; the
// backend keeps its own copy.
struct WeightRef {
  DType dtype = DType::kBF16;  // F32, BF16 or F16
  std::vector<int64_t> shape;  // row-major, dense
  const void* data = nullptr;
};

struct ExpertWeights {
  int layer = 0;
  int expert = 0;
  WeightRef gate;  // [inter, hidden]
  WeightRef up;    // [inter, hidden]
  WeightRef down;  // [hidden, inter]
};

// One expert's tokens for one layer. Without combine: output[t] = ffn(input[t]) (overwritten).
// With combine (combine_weight != nullptr):
//   output[combine_row[t]] += combine_weight[t] * ffn(input[t])   for t < tokens
// so the caller gets the router-weighted sum per token directly (half the bytes back); several
// shards of one Run may then share `output` (shards are applied in order, never concurrently).
struct ExpertShard {
  int expert = 0;
  int tokens = 0;                 // >= 0; 0 is a no-op
  const float* input = nullptr;   // [tokens, hidden]
  float* output = nullptr;        // [tokens, hidden], or rows indexed by combine_row
  const float* combine_weight = nullptr;  // [tokens] or nullptr (no combine)
  const int32_t* combine_row = nullptr;   // [tokens]; nullptr with combine = row t
};

struct BackendOptions {
  int device_ordinal = 0;          // cuda: which GPU
  int64_t memory_limit_bytes = 0;  // > 0: Load fails RESOURCE_EXHAUSTED past it
  bool f16_as_bf16 = false;        // cpu: pack F16 weights as BF16 (half the bytes, lossy)
  // cpu: keep BF16 weights exponent-coded (kernels::PackedLinearOptions::coded_bf16: lossless,
  // 12 bits per weight); the environment variable MOE_CODED_WEIGHTS=0 turns it off.
  bool coded_bf16 = true;
};

struct BackendInfo {
  std::string name;           // "cpu", "cuda"
  std::string device;         // e.g. "AMD EPYC (2 threads, avx512_bf16)", "NVIDIA H100 (0)"
  int64_t memory_bytes = 0;   // total memory of the device (host RAM for cpu)
  int64_t weight_bytes = 0;   // bytes of expert weights currently held
  int experts_loaded = 0;
};

class ExpertBackend {
 public:
  virtual ~ExpertBackend() = default;

  // Copies / packs every expert (replacing one already loaded with the same (layer, expert)).
  // All-or-nothing: INVALID_ARGUMENT on bad dtypes or shapes (gate/up [inter, hidden], down
  // [hidden, inter], same dtype), RESOURCE_EXHAUSTED past the memory limit; nothing is loaded
  // on error.
  virtual absl::Status Load(absl::Span<const ExpertWeights> experts) = 0;

  // Drops the given (layer, expert) pairs; unknown pairs are ignored.
  virtual absl::Status Unload(absl::Span<const std::pair<int, int>> layer_expert) = 0;

  virtual bool Has(int layer, int expert) const = 0;

  // Runs the FFN of every shard of one layer: each shard is one batched GEMM chain over its
  // tokens. NOT_FOUND if a shard's expert is not loaded (nothing is computed then);
  // INVALID_ARGUMENT on negative token counts or null buffers.
  virtual absl::Status Run(int layer, absl::Span<const ExpertShard> shards) = 0;

  virtual BackendInfo Describe() const = 0;
};

// Checks one ExpertWeights: dtypes F32/BF16/F16 and equal, shapes consistent, data non-null.
// Returns hidden and inter sizes through the out-parameters.
absl::Status ValidateExpertWeights(const ExpertWeights& w, int64_t* hidden, int64_t* inter);

// "cpu" always; "cuda" when compiled in. UNAVAILABLE / FAILED_PRECONDITION when the backend
// exists but cannot run here (no GPU); NOT_FOUND for unknown names.
absl::StatusOr<std::unique_ptr<ExpertBackend>> CreateExpertBackend(std::string_view name,
                                                                   const BackendOptions& options);

// Names of the backends built into this binary ("cpu" first).
std::vector<std::string> AvailableBackends();

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_BACKEND_EXPERT_BACKEND_H_
