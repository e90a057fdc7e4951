// The one place that maps config.json's architecture to its implementation.
#include "absl/strings/str_cat.h"
#include "model/arch/architecture.h"

namespace moe::model {

std::string LayerPrefix(int layer) { return absl::StrCat("model.layers.", layer, "."); }

LayerTensorNames LlamaStyleAttentionNames(int layer, bool qkv_bias, bool o_bias) {
  const std::string p = LayerPrefix(layer);
  LayerTensorNames n;
  n.input_norm = p + "input_layernorm.weight";
  n.post_attention_norm = p + "post_attention_layernorm.weight";
  n.q = p + "self_attn.q_proj.weight";
  n.k = p + "self_attn.k_proj.weight";
  n.v = p + "self_attn.v_proj.weight";
  n.o = p + "self_attn.o_proj.weight";
  if (qkv_bias) {
    n.q_bias = p + "self_attn.q_proj.bias";
    n.k_bias = p + "self_attn.k_proj.bias";
    n.v_bias = p + "self_attn.v_proj.bias";
  }
  if (o_bias) n.o_bias = p + "self_attn.o_proj.bias";
  return n;
}

void AddQwenMlpNames(const ModelConfig& config, int layer, LayerTensorNames* n) {
  const std::string p = LayerPrefix(layer);
  if (config.IsMoeLayer(layer)) {
    n->router = p + "mlp.gate.weight";
  } else {
    n->mlp_gate = p + "mlp.gate_proj.weight";
    n->mlp_up = p + "mlp.up_proj.weight";
    n->mlp_down = p + "mlp.down_proj.weight";
  }
}

ExpertTensorNames QwenExpertNames(int layer, int expert) {
  const std::string p = absl::StrCat(LayerPrefix(layer), "mlp.experts.", expert, ".");
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

absl::StatusOr<std::unique_ptr<ModelArchitecture>> CreateArchitecture(const ModelConfig& config) {
  switch (config.architecture) {
    case Architecture::kMixtral: return NewMixtral(config);
    case Architecture::kQwen3Moe: return NewQwen3Moe(config);
    case Architecture::kQwen2Moe: return NewQwen2Moe(config);
    default: break;
  }
  return absl::UnimplementedError(
      absl::StrCat("architecture ", std::string(ArchitectureName(config.architecture)),
                   " is parsed but its forward pass is not implemented yet"));
}

}  // namespace moe::model
