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
    LayerTensorNames n = LlamaStyleAttentionNames(layer, config_.attention_bias, config_.attention_out_bias);
    n.q_norm = LayerPrefix(layer) + "self_attn.q_norm.weight";
    n.k_norm = LayerPrefix(layer) + "self_attn.k_norm.weight";
    AddQwenMlpNames(config_, layer, &n);
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

std::unique_ptr<ModelArchitecture> NewQwen3Moe(const ModelConfig& config) {
  return std::make_unique<Qwen3Moe>(config);
}

}  // namespace moe::model
