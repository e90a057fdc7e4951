// Qwen3MoeForCausalLM: per-head q/k RMSNorm before RoPE; softmax router, top-k, renormalised
// when norm_topk_prob; experts gate_proj/up_proj/down_proj under mlp; layers listed in
// mlp_only_layers (or off the decoder_sparse_step) use a dense MLP.
#include "absl/strings/str_cat.h"
#include "model/arch/architecture.h"

namespace moe::model {
namespace {

class Qwen3Moe final : public ModelArchitecture {
 public:
  explicit Qwen3Moe(const ModelConfig& c) : ModelArchitecture(c) {}
  std::string_view name() const override { return "Qwen3MoeForCausalLM"; }

  LayerTensorNames LayerNames(int layer) const override {
    std::string p = LayerPrefix(layer);
    LayerTensorNames n;
    n.input_norm = p + "input_layernorm.weight";
    n.post_attention_norm = p + "post_attention_layernorm.weight";
    n.q = p + "self_attn.q_proj.weight";
    n.k = p + "self_attn.k_proj.weight";
    n.v = p + "self_attn.v_proj.weight";
    n.o = p + "self_attn.o_proj.weight";
    n.q_norm = p + "self_attn.q_norm.weight";
    n.k_norm = p + "self_attn.k_norm.weight";
    if (config_.attention_bias) {
      n.q_bias = p + "self_attn.q_proj.bias";
      n.k_bias = p + "self_attn.k_proj.bias";
      n.v_bias = p + "self_attn.v_proj.bias";
    }
    if (config_.IsMoeLayer(layer)) {
      n.router = p + "mlp.gate.weight";
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

std::unique_ptr<ModelArchitecture> NewQwen3Moe(const ModelConfig& config) {
  return std::make_unique<Qwen3Moe>(config);
}

}  // namespace moe::model
