// Reading assigned expert weights from a model folder (HF safetensors layout) into a
// ShardExecutor, opening only the shard files that hold them.
#ifndef MOE_EXPERT_SERVICE_EXECUTOR_MODEL_EXPERTS_H_
#define MOE_EXPERT_SERVICE_EXECUTOR_MODEL_EXPERTS_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "expert_service/executor/shard_executor.h"
#include "model/arch/architecture.h"
#include "model/config.h"

namespace moe::expert {

// Parses "all" (every expert of every MoE layer) or "L:E,L:E,..." against `config`.
// INVALID_ARGUMENT for malformed text, out-of-range ids, or a layer that is not a MoE layer.
absl::StatusOr<std::vector<std::pair<int, int>>> ParseExpertList(
    const std::string& text, const model::ModelConfig& config);

// A model folder's config and architecture, kept to load experts on demand.
class ModelExpertSource {
 public:
  static absl::StatusOr<std::unique_ptr<ModelExpertSource>> Open(const std::string& dir);

  // Opens only the tensors of `experts` (memory-mapped), loads them into `executor` with
  // `epoch` (all-or-nothing), and unmaps them again (the backend keeps its own copy).
  absl::Status LoadInto(absl::Span<const std::pair<int, int>> experts, int64_t epoch,
                        ShardExecutor* executor) const;

  const model::ModelConfig& config() const { return config_; }
  // Executor limits derived from the config (layers, experts, hidden).
  ShardExecutorConfig ExecutorConfig() const;

 private:
  ModelExpertSource() = default;
  std::string dir_;
  model::ModelConfig config_;
  std::unique_ptr<model::ModelArchitecture> arch_;
};

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_EXECUTOR_MODEL_EXPERTS_H_
