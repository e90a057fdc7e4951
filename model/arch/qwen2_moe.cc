// Qwen2MoeForCausalLM: q/k/v biases; softmax router, top-k, renormalised only when
// norm_topk_prob (default false); a shared expert added to every token, scaled by
// sigmoid(shared_expert_gate x).
#include "absl/strings/str_cat.h"
#include "model/arch/architecture.h"

namespace moe::model {
namespace {

class Qwen2Moe final : public ModelArchitecture {
 public:
  explicit Qwen2Moe(const ModelConfig& c) : ModelArchitecture(c) {}
  std::string_view name() const override { return "Qwen2MoeForCausalLM"; }

  LayerTensorNames LayerNames(int layer) const override {
    // HF Qwen2Moe always has q/k/v biases (ModelConfig::attention_bias is true for it).
    LayerTensorNames n = LlamaStyleAttentionNames(layer, config_.attention_bias);
    AddQwenMlpNames(config_, layer, &n);
    if (!n.router.empty() && config_.shared_expert_intermediate_size > 0) {
      const std::string p = LayerPrefix(layer) + "mlp.shared_expert";
      n.shared_gate = p + ".gate_proj.weight";
      n.shared_up = p + ".up_proj.weight";
      n.shared_down = p + ".down_proj.weight";
      n.shared_expert_gate = p + "_gate.weight";
    }
    return n;
  }

  ExpertTensorNames ExpertNames(int layer, int expert) const override {
    return QwenExpertNames(layer, expert);
  }

  RouterSpec Router() const override {
    RouterSpec s;
    s.scoring = RouterScoring::kSoftmax;
    s.num_experts = config_.num_experts;
    s.top_k = config_.num_experts_per_tok;
    s.renormalize = config_.norm_topk_prob;
    return s;
  }
};

}  // namespace

std::unique_ptr<ModelArchitecture> NewQwen2Moe(const ModelConfig& config) {
  return std::make_unique<Qwen2Moe>(config);
}

}  // namespace moe::model
