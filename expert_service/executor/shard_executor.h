// ShardExecutor: the expert service's logic, no gRPC. It owns an ExpertBackend and the record
// of which (layer, expert) pairs are loaded here, validates decoded Forward requests against
// them before touching any tensor memory, and runs every shard of a request in one
// ExpertBackend::Run call.
//
// Threads: Validate, Loaded, Describe, LoadExperts, DropExperts and SetMinEpoch may be called
// from any thread. Forward is called by one thread at a time (the compute thread), per the
// ExpertBackend contract.
#ifndef MOE_EXPERT_SERVICE_EXECUTOR_SHARD_EXECUTOR_H_
#define MOE_EXPERT_SERVICE_EXECUTOR_SHARD_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "expert_service/backend/expert_backend.h"
#include "model/dtype.h"

namespace moe::expert {

// A tensor as it arrived on the wire: bytes are NOT owned (they point into the request message,
// which outlives the call). dtype is nullopt for an unknown or unspecified wire dtype.
struct WireTensor {
  std::optional<DType> dtype;
  std::vector<int64_t> shape;
  std::string_view data;
  bool present = false;  // false: the field was absent
};

struct ShardRequest {
  int64_t expert = 0;
  WireTensor hidden;   // [tokens, hidden], F32 or BF16
  WireTensor weights;  // combine only: [tokens] F32 router weights
  WireTensor rows;     // combine only, optional: [tokens] I32 rows of the combined output
};

struct ForwardRequest {
  int64_t layer = 0;
  int64_t epoch = 0;
  bool combine = false;
  int64_t combined_rows = 0;  // combine only: rows of ForwardResult::combined
  std::vector<ShardRequest> shards;
};

// F32 outputs. Without combine: outputs[i] is [tokens_i, hidden] for shard i. With combine:
// combined is [combined_rows, hidden] = sum over shards and tokens of weight * ffn(x).
struct ForwardResult {
  std::vector<std::vector<float>> outputs;
  std::vector<float> combined;
  int64_t tokens = 0;  // total tokens computed
};

struct ShardExecutorConfig {
  int num_layers = 0;
  int num_experts = 0;
  int64_t hidden = 0;
  int64_t max_tokens = 8192;  // per request, summed over shards (and max combined_rows)
  int max_shards = 1024;      // per request
};

class ShardExecutor {
 public:
  ShardExecutor(ShardExecutorConfig config, std::unique_ptr<ExpertBackend> backend);

  // Loads experts into the backend (all-or-nothing) and records them; `epoch` becomes the
  // applied epoch when larger than the current one.
  absl::Status LoadExperts(absl::Span<const ExpertWeights> experts, int64_t epoch);
  absl::Status DropExperts(absl::Span<const std::pair<int, int>> layer_expert);

  // Requests routed with an epoch below `epoch` get FAILED_PRECONDITION.
  void SetMinEpoch(int64_t epoch) { min_epoch_.store(epoch); }
  int64_t applied_epoch() const { return applied_epoch_.load(); }

  // Checks ids, shapes, byte lengths, dtypes, rows and epoch. Touches no tensor bytes beyond
  // the rows (whose values must be in range). INVALID_ARGUMENT for malformed requests,
  // FAILED_PRECONDITION for an expert not loaded here or a stale epoch.
  absl::Status Validate(const ForwardRequest& request) const;

  // Validate, then convert activations to F32 and run all shards in one backend call.
  absl::StatusOr<ForwardResult> Forward(const ForwardRequest& request);

  std::vector<std::pair<int, int>> Loaded() const;
  BackendInfo Describe() const { return backend_->Describe(); }
  const ShardExecutorConfig& config() const { return config_; }

 private:
  absl::Status ValidateShard(const ForwardRequest& request, size_t index,
                             int64_t* tokens) const;

  const ShardExecutorConfig config_;
  std::unique_ptr<ExpertBackend> backend_;
  std::atomic<int64_t> min_epoch_{0};
  std::atomic<int64_t> applied_epoch_{0};
  mutable absl::Mutex mu_;
  std::set<std::pair<int, int>> loaded_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_EXECUTOR_SHARD_EXECUTOR_H_
