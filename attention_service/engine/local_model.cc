#include "attention_service/engine/local_model.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/safetensors.h"

namespace moe::attention {

namespace {
expert::WeightRef Ref(const model::TensorView& t) {
  return expert::WeightRef{t.dtype, t.shape, t.data};
}
}  // namespace

absl::Status LoadAllExperts(const std::string& dir, const model::ModelConfig& config,
                            const model::ModelArchitecture& arch, expert::ExpertBackend* backend) {
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<model::WeightStore> store,
                       model::WeightStore::Open(dir, [](std::string_view name) {
                         return !ModelRunner::IsDenseTensor(name);
                       }));
  // One layer at a time keeps the transient weight list small.
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    if (!config.IsMoeLayer(l)) continue;
    std::vector<expert::ExpertWeights> batch;
    for (int e = 0; e < config.num_experts; ++e) {
      model::ExpertTensorNames n = arch.ExpertNames(l, e);
      MOE_ASSIGN_OR_RETURN(model::TensorView g, store->Get(n.gate));
      MOE_ASSIGN_OR_RETURN(model::TensorView u, store->Get(n.up));
      MOE_ASSIGN_OR_RETURN(model::TensorView d, store->Get(n.down));
      batch.push_back(expert::ExpertWeights{l, e, Ref(g), Ref(u), Ref(d)});
    }
    MOE_RETURN_IF_ERROR(backend->Load(batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LocalModel>> LocalModel::Open(const std::string& dir,
                                                             const LocalModelOptions& options) {
  auto m = std::unique_ptr<LocalModel>(new LocalModel());
  MOE_ASSIGN_OR_RETURN(m->config_, model::LoadModelConfig(dir));
  MOE_ASSIGN_OR_RETURN(m->arch_, model::CreateArchitecture(m->config_));
  {
    MOE_ASSIGN_OR_RETURN(std::unique_ptr<model::WeightStore> dense,
                         model::WeightStore::Open(dir, ModelRunner::IsDenseTensor));
    MOE_ASSIGN_OR_RETURN(m->runner_,
                         ModelRunner::Load(m->config_, *m->arch_, *dense, options.linear));
  }
  expert::BackendOptions bo;
  MOE_ASSIGN_OR_RETURN(m->backend_, expert::CreateExpertBackend(options.backend, bo));
  MOE_RETURN_IF_ERROR(LoadAllExperts(dir, m->config_, *m->arch_, m->backend_.get()));
  m->executor_ = std::make_unique<LocalExpertExecutor>(m->backend_.get(), m->config_.num_experts);
  return m;
}

}  // namespace moe::attention
