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
    std::string p = LayerPrefix(layer);
    LayerTensorNames n;
    n.input_norm = p + "input_layernorm.weight";
    n.post_attention_norm = p + "post_attention_layernorm.weight";
    n.q = p + "self_attn.q_proj.weight";
    n.k = p + "self_attn.k_proj.weight";
    n.v = p + "self_attn.v_proj.weight";
    n.o = p + "self_attn.o_proj.weight";
    n.q_bias = p + "self_attn.q_proj.bias";
    n.k_bias = p + "self_attn.k_proj.bias";
    n.v_bias = p + "self_attn.v_proj.bias";
    if (config_.IsMoeLayer(layer)) {
      n.router = p + "mlp.gate.weight";
      if (config_.shared_expert_intermediate_size > 0) {
        n.shared_gate = p + "mlp.shared_expert.gate_proj.weight";
        n.shared_up = p + "mlp.shared_expert.up_proj.weight";
        n.shared_down = p + "mlp.shared_expert.down_proj.weight";
        n.shared_expert_gate = p + "mlp.shared_expert_gate.weight";
      }
    } else {
      n.mlp_gate = p + "mlp.gate_proj.weight";
      n.mlp_up = p + "mlp.up_proj.weight";
      n.mlp_down = p + "mlp.down_proj.weight";
    }
    return n;
  }

  ExpertTensorNames ExpertNames(int layer, int expert) const override {
    std::string p = absl::StrCat(LayerPrefix(layer), "mlp.experts.", expert, ".");
    return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
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
