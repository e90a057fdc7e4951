// LocalModel: a whole model in one process — config, dense ModelRunner, every routed expert in
// an in-process ExpertBackend, and the LocalExpertExecutor between them. Used by
// `moe generate`, the golden tests and the benchmarks; the disaggregated system splits the same
// pieces across processes.
#ifndef MOE_ATTENTION_SERVICE_ENGINE_LOCAL_MODEL_H_
#define MOE_ATTENTION_SERVICE_ENGINE_LOCAL_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "attention_service/dispatch/local_expert_executor.h"
#include "attention_service/engine/engine.h"
#include "attention_service/engine/model_runner.h"
#include "expert_service/backend/expert_backend.h"
#include "model/arch/architecture.h"
#include "model/config.h"

namespace moe::attention {

struct LocalModelOptions {
  std::string backend = "cpu";
  kernels::PackedLinearOptions linear;
};

// Loads every (layer, expert) of a model folder into `backend`. Reads only expert tensors.
absl::Status LoadAllExperts(const std::string& dir, const model::ModelConfig& config,
                            const model::ModelArchitecture& arch, expert::ExpertBackend* backend);

class LocalModel {
 public:
  static absl::StatusOr<std::unique_ptr<LocalModel>> Open(const std::string& dir,
                                                          const LocalModelOptions& options = {});
  const model::ModelConfig& config() const { return config_; }
  ModelRunner* runner() { return runner_.get(); }
  ExpertExecutor* experts() { return executor_.get(); }
  expert::ExpertBackend* backend() { return backend_.get(); }
  // A fresh engine over this model (each engine has its own KV cache).
  absl::StatusOr<std::unique_ptr<Engine>> NewEngine(const EngineOptions& options) {
    return Engine::Create(options, runner_.get(), executor_.get());
  }

 private:
  model::ModelConfig config_;
  std::unique_ptr<model::ModelArchitecture> arch_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<expert::ExpertBackend> backend_;
  std::unique_ptr<LocalExpertExecutor> executor_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_ENGINE_LOCAL_MODEL_H_
