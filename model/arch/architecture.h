// An architecture says where a model's tensors live (their HF names) and how it routes.
// The forward pass is generic: optional parts (q/k norm, qkv bias, shared expert) are present
// when their names are non-empty. One file per architecture; registry.cc maps config.json's
// `architectures` to them (docs/HOWTO-add-model-architecture.md).
#ifndef MOE_MODEL_ARCH_ARCHITECTURE_H_
#define MOE_MODEL_ARCH_ARCHITECTURE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "model/arch/router.h"
#include "model/config.h"

namespace moe::model {

// The HF tensor names of one decoder layer's dense part. Empty = absent.
struct LayerTensorNames {
  std::string input_norm;           // [hidden]
  std::string post_attention_norm;  // [hidden]
  std::string q, k, v, o;           // q [heads*hd, hidden], k/v [kv*hd, hidden], o [hidden, heads*hd]
  std::string q_bias, k_bias, v_bias;
  std::string o_bias;  // [hidden]
  std::string q_norm, k_norm;  // per-head RMSNorm weights [hd]
  // MoE layer (IsMoeLayer):
  std::string router;  // [experts, hidden]
  std::string router_bias;  // e_score_correction_bias [experts] (sigmoid routers)
  std::string shared_gate, shared_up, shared_down;  // shared expert FFN
  std::string shared_expert_gate;                   // [1, hidden]: sigmoid gate on the shared expert
  // Dense MLP layer (not IsMoeLayer):
  std::string mlp_gate, mlp_up, mlp_down;
};

// The HF tensor names of one routed expert's SwiGLU FFN.
struct ExpertTensorNames {
  std::string gate;  // [inter, hidden]  (Mixtral w1)
  std::string up;    // [inter, hidden]  (Mixtral w3)
  std::string down;  // [hidden, inter]  (Mixtral w2)
};

class ModelArchitecture {
 public:
  virtual ~ModelArchitecture() = default;
  virtual std::string_view name() const = 0;
  virtual LayerTensorNames LayerNames(int layer) const = 0;
  virtual ExpertTensorNames ExpertNames(int layer, int expert) const = 0;
  virtual RouterSpec Router() const = 0;
  const ModelConfig& config() const { return config_; }

  // Shared by every architecture so far.
  static constexpr std::string_view kEmbedTokens = "model.embed_tokens.weight";
  static constexpr std::string_view kFinalNorm = "model.norm.weight";
  static constexpr std::string_view kLmHead = "lm_head.weight";

 protected:
  explicit ModelArchitecture(ModelConfig config) : config_(std::move(config)) {}
  ModelConfig config_;
};

// The one registry: UNIMPLEMENTED for an architecture whose forward pass does not exist yet.
absl::StatusOr<std::unique_ptr<ModelArchitecture>> CreateArchitecture(const ModelConfig& config);

// Per-architecture factories (one file each).
std::unique_ptr<ModelArchitecture> NewMixtral(const ModelConfig& config);
std::unique_ptr<ModelArchitecture> NewQwen3Moe(const ModelConfig& config);
std::unique_ptr<ModelArchitecture> NewQwen2Moe(const ModelConfig& config);

// "model.layers.{layer}." — the prefix HF uses for decoder layers.
std::string LayerPrefix(int layer);

// The names every architecture so far shares: input/post-attention RMSNorms and the
// self_attn.{q,k,v,o}_proj weights (plus q/k/v biases when `qkv_bias`, an o_proj bias when
// `o_bias`).
LayerTensorNames LlamaStyleAttentionNames(int layer, bool qkv_bias, bool o_bias = false);

// Qwen MoE layers: `mlp.gate` router and `mlp.experts.E.{gate,up,down}_proj`, or a dense
// `mlp.{gate,up,down}_proj` on non-MoE layers.
void AddQwenMlpNames(const ModelConfig& config, int layer, LayerTensorNames* names);
ExpertTensorNames QwenExpertNames(int layer, int expert);

}  // namespace moe::model

#endif  // MOE_MODEL_ARCH_ARCHITECTURE_H_
