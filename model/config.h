// A Hugging Face `config.json`, parsed into one typed, validated value.
//
//   MOE_ASSIGN_OR_RETURN(moe::model::ModelConfig cfg, moe::model::LoadModelConfig(dir));
//   if (cfg.IsMoeLayer(l)) { ... cfg.num_experts, cfg.expert_intermediate_size ... }
//
// Field names follow Hugging Face where one name means the same thing in every architecture; the
// per-architecture spellings are normalised here, once (see the table on each field). Defaults
// are those of the Hugging Face `*Config` classes (transformers 4.51) when a key is absent; the
// fields that define tensor shapes are required. Every failure is INVALID_ARGUMENT and its message
// names the offending field; malformed JSON never throws out of this API.
//
// Thread-safety: ModelConfig is a plain value; the functions are pure.
#ifndef MOE_MODEL_CONFIG_H_
#define MOE_MODEL_CONFIG_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::model {

enum class Architecture { kMixtral, kQwen3Moe, kQwen2Moe, kDeepseekV3 };

// "MixtralForCausalLM", "Qwen3MoeForCausalLM", "Qwen2MoeForCausalLM", "DeepseekV3ForCausalLM".
std::string_view ArchitectureName(Architecture arch);
// Inverse of ArchitectureName; INVALID_ARGUMENT naming `architectures` and the value otherwise.
absl::StatusOr<Architecture> ParseArchitecture(std::string_view hf_class_name);

// How router logits become expert weights (DeepSeek-V3 `scoring_func`).
enum class ScoringFunc { kSoftmax, kSigmoid };
// How the top-k experts are chosen (DeepSeek `topk_method`): plain top-k over all experts
// ("greedy"), top-k within the best `topk_group` groups ranked by their max score
// ("group_limited_greedy"), or ranked by the sum of each group's top-2 scores after adding
// `e_score_correction_bias` ("noaux_tc", DeepSeek-V3).
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoauxTc };

// `rope_scaling` when present (YaRN for DeepSeek-V3; "linear"/"dynamic"/"yarn"/... elsewhere).
// Keys absent in the JSON keep the defaults below.
struct RopeScaling {
  std::string type;  // "type" or "rope_type"
  double factor = 1.0;
  int original_max_position_embeddings = 0;  // 0 = absent
  double beta_fast = 32.0;                   // YaRN
  double beta_slow = 1.0;                    // YaRN
  double mscale = 1.0;                       // DeepSeek YaRN
  double mscale_all_dim = 0.0;               // DeepSeek YaRN
};

struct ModelConfig {
  Architecture architecture = Architecture::kMixtral;
  std::string model_type;           // "mixtral", "qwen3_moe", ... (informational; "" when absent)
  std::string hidden_act = "silu";  // only "silu" is served today; parsed for diagnostics

  // --- shapes -----------------------------------------------------------------------------
  int vocab_size = 0;
  int hidden_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // default: num_attention_heads
  // Per-head width of q/k/v. Default hidden_size / num_attention_heads. DeepSeek-V3:
  // qk_nope_head_dim + qk_rope_head_dim (the q/k width; v uses v_head_dim).
  int head_dim = 0;
  // Dense MLP width (Qwen `mlp_only_layers`, DeepSeek first_k_dense_replace layers).
  // Mixtral has no dense MLP: equals expert_intermediate_size there.
  int intermediate_size = 0;
  // Routed expert FFN width: Mixtral `intermediate_size`, Qwen/DeepSeek `moe_intermediate_size`.
  int expert_intermediate_size = 0;
  // Mixtral `num_local_experts`, Qwen `num_experts`, DeepSeek `n_routed_experts`.
  int num_experts = 0;
  int num_experts_per_tok = 0;
  int max_position_embeddings = 0;

  // --- routing ----------------------------------------------------------------------------
  // Renormalise the top-k weights to sum to 1. Mixtral: always true (not a config key).
  // Qwen2Moe default false, Qwen3Moe default false (HF class defaults; released Qwen3 MoE
  // checkpoints set true), DeepSeek-V3 default true.
  bool norm_topk_prob = false;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;  // DeepSeek-V3 "sigmoid"
  TopkMethod topk_method = TopkMethod::kGreedy;
  double routed_scaling_factor = 1.0;  // DeepSeek: multiplies the routed output
  int n_group = 1;                     // DeepSeek expert groups (1 = no grouping)
  int topk_group = 1;                  // DeepSeek groups kept

  // --- numerics ---------------------------------------------------------------------------
  double rms_norm_eps = 1e-6;               // HF defaults: Mixtral 1e-5, Qwen 1e-6, DeepSeek 1e-6
  double rope_theta = 10000.0;              // HF defaults: Mixtral 1e6, others 1e4
  std::optional<RopeScaling> rope_scaling;  // absent or null -> nullopt
  // Sliding-window attention span when it is in effect: Mixtral `sliding_window` when not null;
  // Qwen `sliding_window` only if `use_sliding_window` is true. nullopt = full attention.
  std::optional<int> sliding_window;

  // --- tokens -----------------------------------------------------------------------------
  bool tie_word_embeddings = false;
  std::optional<int> bos_token_id;  // absent or null -> nullopt
  std::vector<int> eos_token_ids;   // `eos_token_id`: an int or a list; may be empty
  std::optional<int> pad_token_id;

  // --- attention variants -----------------------------------------------------------------
  bool qk_norm = false;  // per-head RMSNorm on q and k (Qwen3Moe: always)
  // q/k/v projections carry a bias. Qwen2Moe: always true in HF (or `qkv_bias` if present);
  // Qwen3Moe and DeepSeek: `attention_bias` (default false); Mixtral: false.
  bool attention_bias = false;
  // o_proj carries a bias: Qwen3Moe/DeepSeek `attention_bias`; false for Mixtral and Qwen2Moe.
  bool attention_out_bias = false;

  // --- Qwen MoE layout --------------------------------------------------------------------
  // Qwen2Moe shared expert FFN width (its output is gated by sigmoid(shared_expert_gate)).
  // 0 = no shared expert (Mixtral, Qwen3Moe).
  int shared_expert_intermediate_size = 0;
  int decoder_sparse_step = 1;       // Qwen: layer l is sparse iff (l + 1) % step == 0
  std::vector<int> mlp_only_layers;  // Qwen: layers forced dense

  // --- DeepSeek-V3 (parsed now; its forward pass comes later) -----------------------------
  int first_k_dense_replace = 0;   // layers [0, k) are dense
  int moe_layer_freq = 1;          // layer l >= k is MoE iff l % freq == 0
  int n_shared_experts = 0;        // shared experts of width expert_intermediate_size each
  std::optional<int> q_lora_rank;  // null -> q is a plain projection (V2-Lite)
  int kv_lora_rank = 0;
  int qk_rope_head_dim = 0;
  int qk_nope_head_dim = 0;
  int v_head_dim = 0;

  // True when layer `layer` (0-based) routes to experts; false for a dense MLP layer.
  //   Mixtral: every layer.
  //   Qwen2Moe/Qwen3Moe: layer not in mlp_only_layers and num_experts > 0 and
  //     (layer + 1) % decoder_sparse_step == 0.
  //   DeepseekV3: layer >= first_k_dense_replace and layer % moe_layer_freq == 0.
  // Layers outside [0, num_hidden_layers) return false.
  bool IsMoeLayer(int layer) const;

  // Number of MoE layers (IsMoeLayer over all layers).
  int NumMoeLayers() const;
};

// Parses and validates the text of a config.json. INVALID_ARGUMENT (naming the field) for
// malformed JSON, wrong types, missing required fields, unknown architecture, non-positive sizes,
// num_attention_heads % num_key_value_heads != 0, num_experts_per_tok > num_experts, etc.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json);

// Reads `<dir>/config.json` and parses it. NOT_FOUND if the file cannot be read.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir);

// One-line human summary, e.g.
// "MixtralForCausalLM: 4 layers (4 MoE), hidden 64, heads 4/2x16, 8 experts top-2 x 128, vocab 512"
std::string DescribeModelConfig(const ModelConfig& config);

}  // namespace moe::model

#endif  // MOE_MODEL_CONFIG_H_
