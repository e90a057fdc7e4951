// MixtralForCausalLM: softmax router over all experts, top-k, always renormalised;
// experts w1 (gate), w3 (up), w2 (down) under block_sparse_moe.
#include "absl/strings/str_cat.h"
#include "model/arch/architecture.h"

namespace moe::model {
namespace {

class Mixtral final : public ModelArchitecture {
 public:
  explicit Mixtral(const ModelConfig& c) : ModelArchitecture(c) {}
  std::string_view name() const override { return "MixtralForCausalLM"; }

  LayerTensorNames LayerNames(int layer) const override {
    LayerTensorNames n = LlamaStyleAttentionNames(layer, /*qkv_bias=*/false);
    n.router = LayerPrefix(layer) + "block_sparse_moe.gate.weight";
    return n;
  }

  ExpertTensorNames ExpertNames(int layer, int expert) const override {
    std::string p = absl::StrCat(LayerPrefix(layer), "block_sparse_moe.experts.", expert, ".");
    return {p + "w1.weight", p + "w3.weight", p + "w2.weight"};
  }

  RouterSpec Router() const override {
    RouterSpec s;
    s.scoring = RouterScoring::kSoftmax;
    s.num_experts = config_.num_experts;
    s.top_k = config_.num_experts_per_tok;
    s.renormalize = true;  // Mixtral always renormalises the top-k weights
    return s;
  }
};

}  // namespace

std::unique_ptr<ModelArchitecture> NewMixtral(const ModelConfig& config) {
  return std::make_unique<Mixtral>(config);
}

}  // namespace moe::model
