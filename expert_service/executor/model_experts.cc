#include "expert_service/executor/model_experts.h"

#include <unordered_set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "model/safetensors.h"

namespace moe::expert {

absl::StatusOr<std::vector<std::pair<int, int>>> ParseExpertList(
    const std::string& text, const model::ModelConfig& config) {
  std::vector<std::pair<int, int>> out;
  if (text == "all") {
    for (int l = 0; l < config.num_hidden_layers; ++l) {
      if (!config.IsMoeLayer(l)) continue;
      for (int e = 0; e < config.num_experts; ++e) out.push_back({l, e});
    }
    return out;
  }
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> parts = absl::StrSplit(absl::StripAsciiWhitespace(item), ':');
    int l = 0, e = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &l) || !absl::SimpleAtoi(parts[1], &e)) {
      return absl::InvalidArgumentError(absl::StrCat("bad expert '", item, "': want LAYER:EXPERT"));
    }
    if (l < 0 || l >= config.num_hidden_layers || !config.IsMoeLayer(l) || e < 0 ||
        e >= config.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("expert ", l, ":", e, " not in the model"));
    }
    out.push_back({l, e});
  }
  if (out.empty()) return absl::InvalidArgumentError("empty expert list");
  return out;
}

absl::StatusOr<std::unique_ptr<ModelExpertSource>> ModelExpertSource::Open(
    const std::string& dir) {
  auto src = std::unique_ptr<ModelExpertSource>(new ModelExpertSource());
  src->dir_ = dir;
  MOE_ASSIGN_OR_RETURN(src->config_, model::LoadModelConfig(dir));
  MOE_ASSIGN_OR_RETURN(src->arch_, model::CreateArchitecture(src->config_));
  return src;
}

ShardExecutorConfig ModelExpertSource::ExecutorConfig() const {
  ShardExecutorConfig c;
  c.num_layers = config_.num_hidden_layers;
  c.num_experts = config_.num_experts;
  c.hidden = config_.hidden_size;
  return c;
}

absl::Status ModelExpertSource::LoadInto(absl::Span<const std::pair<int, int>> experts,
                                         int64_t epoch, ShardExecutor* executor) const {
  std::unordered_set<std::string> wanted;
  std::vector<model::ExpertTensorNames> names;
  for (const auto& [l, e] : experts) {
    if (l < 0 || l >= config_.num_hidden_layers || !config_.IsMoeLayer(l) || e < 0 ||
        e >= config_.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("expert ", l, ":", e, " not in the model"));
    }
    names.push_back(arch_->ExpertNames(l, e));
    wanted.insert(names.back().gate);
    wanted.insert(names.back().up);
    wanted.insert(names.back().down);
  }
  MOE_ASSIGN_OR_RETURN(
      std::unique_ptr<model::WeightStore> store,
      model::WeightStore::Open(dir_, [&wanted](std::string_view name) {
        return wanted.count(std::string(name)) > 0;
      }));
  auto ref = [](const model::TensorView& t) { return WeightRef{t.dtype, t.shape, t.data}; };
  std::vector<ExpertWeights> batch;
  for (size_t i = 0; i < experts.size(); ++i) {
    MOE_ASSIGN_OR_RETURN(model::TensorView g, store->Get(names[i].gate));
    MOE_ASSIGN_OR_RETURN(model::TensorView u, store->Get(names[i].up));
    MOE_ASSIGN_OR_RETURN(model::TensorView d, store->Get(names[i].down));
    batch.push_back(ExpertWeights{experts[i].first, experts[i].second, ref(g), ref(u), ref(d)});
  }
  return executor->LoadExperts(batch, epoch);
}

}  // namespace moe::expert
