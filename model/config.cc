#include "model/config.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace moe::model {
namespace {

using json = nlohmann::json;

// Debian's Abseil is built with its own string_view type.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status FieldError(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config.json: field `", Sv(field), "` ", Sv(what)));
}

std::string Excerpt(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// Typed access to the keys of the top-level object. "Absent" means missing or JSON null.
class Fields {
 public:
  explicit Fields(const json& obj) : obj_(obj) {}

  const json* Get(std::string_view key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool Has(std::string_view key) const { return Get(key) != nullptr; }

  absl::Status Int(std::string_view key, int* out) const {
    const json* v = Get(key);
    if (v == nullptr) return FieldError(key, "is required");
    return ToInt(key, *v, out);
  }
  absl::Status IntOr(std::string_view key, int def, int* out) const {
    const json* v = Get(key);
    if (v == nullptr) {
      *out = def;
      return absl::OkStatus();
    }
    return ToInt(key, *v, out);
  }
  absl::Status OptInt(std::string_view key, std::optional<int>* out) const {
    const json* v = Get(key);
    if (v == nullptr) {
      out->reset();
      return absl::OkStatus();
    }
    int x = 0;
    MOE_RETURN_IF_ERROR(ToInt(key, *v, &x));
    *out = x;
    return absl::OkStatus();
  }
  absl::Status DoubleOr(std::string_view key, double def, double* out) const {
    const json* v = Get(key);
    if (v == nullptr) {
      *out = def;
      return absl::OkStatus();
    }
    return ToDouble(key, *v, out);
  }
  absl::Status BoolOr(std::string_view key, bool def, bool* out) const {
    const json* v = Get(key);
    if (v == nullptr) {
      *out = def;
      return absl::OkStatus();
    }
    if (!v->is_boolean())
      return FieldError(key, absl::StrCat("must be a boolean, got ", Excerpt(*v)));
    *out = v->get<bool>();
    return absl::OkStatus();
  }
  absl::Status StringOr(std::string_view key, std::string def, std::string* out) const {
    const json* v = Get(key);
    if (v == nullptr) {
      *out = std::move(def);
      return absl::OkStatus();
    }
    if (!v->is_string())
      return FieldError(key, absl::StrCat("must be a string, got ", Excerpt(*v)));
    *out = v->get<std::string>();
    return absl::OkStatus();
  }
  // An int or a list of ints (eos_token_id); absent -> empty.
  absl::Status IntOrIntList(std::string_view key, std::vector<int>* out) const {
    out->clear();
    const json* v = Get(key);
    if (v == nullptr) return absl::OkStatus();
    if (v->is_array()) {
      for (const json& e : *v) {
        int x = 0;
        MOE_RETURN_IF_ERROR(ToInt(key, e, &x));
        out->push_back(x);
      }
      return absl::OkStatus();
    }
    int x = 0;
    MOE_RETURN_IF_ERROR(ToInt(key, *v, &x));
    out->push_back(x);
    return absl::OkStatus();
  }
  absl::Status IntList(std::string_view key, std::vector<int>* out) const {
    out->clear();
    const json* v = Get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array())
      return FieldError(key, absl::StrCat("must be a list of integers, got ", Excerpt(*v)));
    for (const json& e : *v) {
      int x = 0;
      MOE_RETURN_IF_ERROR(ToInt(key, e, &x));
      out->push_back(x);
    }
    return absl::OkStatus();
  }

  static absl::Status ToInt(std::string_view key, const json& v, int* out) {
    if (v.is_number_integer()) {
      if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
          return FieldError(key, absl::StrCat("is out of range: ", Excerpt(v)));
        }
        *out = static_cast<int>(u);
        return absl::OkStatus();
      }
      int64_t i = v.get<int64_t>();
      if (i > std::numeric_limits<int>::max() || i < std::numeric_limits<int>::min()) {
        return FieldError(key, absl::StrCat("is out of range: ", Excerpt(v)));
      }
      *out = static_cast<int>(i);
      return absl::OkStatus();
    }
    if (v.is_number_float()) {  // 4096.0 is accepted; 4096.5 is not
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) &&
          std::fabs(d) <= std::numeric_limits<int>::max()) {
        *out = static_cast<int>(d);
        return absl::OkStatus();
      }
    }
    return FieldError(key, absl::StrCat("must be an integer, got ", Excerpt(v)));
  }
  static absl::Status ToDouble(std::string_view key, const json& v, double* out) {
    if (!v.is_number()) return FieldError(key, absl::StrCat("must be a number, got ", Excerpt(v)));
    *out = v.get<double>();
    if (!std::isfinite(*out)) return FieldError(key, "must be finite");
    return absl::OkStatus();
  }

 private:
  const json& obj_;
};

absl::Status Positive(std::string_view field, int v) {
  if (v <= 0) return FieldError(field, absl::StrCat("must be positive, got ", v));
  return absl::OkStatus();
}
absl::Status NonNegative(std::string_view field, int v) {
  if (v < 0) return FieldError(field, absl::StrCat("must be >= 0, got ", v));
  return absl::OkStatus();
}

absl::Status ParseRopeScaling(const json& v, RopeScaling* out) {
  if (!v.is_object())
    return FieldError("rope_scaling", absl::StrCat("must be an object or null, got ", Excerpt(v)));
  Fields f(v);
  std::string type;
  MOE_RETURN_IF_ERROR(f.StringOr("rope_type", "", &type));
  if (type.empty()) MOE_RETURN_IF_ERROR(f.StringOr("type", "", &type));
  if (type.empty()) return FieldError("rope_scaling", "needs `type` or `rope_type`");
  out->type = type;
  auto wrap = [](absl::Status s) {
    if (s.ok()) return s;
    return absl::InvalidArgumentError(absl::StrCat(s.message(), " (inside `rope_scaling`)"));
  };
  MOE_RETURN_IF_ERROR(wrap(f.DoubleOr("factor", 1.0, &out->factor)));
  MOE_RETURN_IF_ERROR(
      wrap(f.IntOr("original_max_position_embeddings", 0, &out->original_max_position_embeddings)));
  MOE_RETURN_IF_ERROR(wrap(f.DoubleOr("beta_fast", 32.0, &out->beta_fast)));
  MOE_RETURN_IF_ERROR(wrap(f.DoubleOr("beta_slow", 1.0, &out->beta_slow)));
  MOE_RETURN_IF_ERROR(wrap(f.DoubleOr("mscale", 1.0, &out->mscale)));
  MOE_RETURN_IF_ERROR(wrap(f.DoubleOr("mscale_all_dim", 0.0, &out->mscale_all_dim)));
  if (!(out->factor > 0)) return FieldError("rope_scaling.factor", "must be positive");
  return absl::OkStatus();
}

// transformers v5 writes `rope_parameters` {"rope_theta", "rope_type", scaling keys...} instead
// of top-level rope_theta / rope_scaling; the top-level keys win when both exist.
absl::Status ParseRopeParameters(const Fields& f, ModelConfig* c) {
  const json* rp = f.Get("rope_parameters");
  if (rp == nullptr) return absl::OkStatus();
  if (!rp->is_object()) {
    return FieldError("rope_parameters", absl::StrCat("must be an object, got ", Excerpt(*rp)));
  }
  Fields p(*rp);
  if (!f.Has("rope_theta")) {
    MOE_RETURN_IF_ERROR(p.DoubleOr("rope_theta", c->rope_theta, &c->rope_theta));
  }
  std::string type;
  MOE_RETURN_IF_ERROR(p.StringOr("rope_type", "default", &type));
  if (!c->rope_scaling && type != "default") {
    RopeScaling scaling;
    MOE_RETURN_IF_ERROR(ParseRopeScaling(*rp, &scaling));
    c->rope_scaling = scaling;
  }
  return absl::OkStatus();
}

// Fields whose keys and defaults depend on the architecture, one function per architecture.
absl::Status ParseMixtral(const Fields& f, ModelConfig* c) {
  // Experts use `intermediate_size`; Mixtral always renormalises its top-k.
  MOE_RETURN_IF_ERROR(f.Int("intermediate_size", &c->expert_intermediate_size));
  c->intermediate_size = c->expert_intermediate_size;
  MOE_RETURN_IF_ERROR(f.Int("num_local_experts", &c->num_experts));
  c->norm_topk_prob = true;
  MOE_RETURN_IF_ERROR(f.DoubleOr("rms_norm_eps", 1e-5, &c->rms_norm_eps));
  MOE_RETURN_IF_ERROR(f.DoubleOr("rope_theta", 1e6, &c->rope_theta));
  MOE_RETURN_IF_ERROR(f.IntOr("max_position_embeddings", 4096 * 32, &c->max_position_embeddings));
  return f.OptInt("sliding_window", &c->sliding_window);
}

absl::Status ParseQwen(const Fields& f, ModelConfig* c) {
  MOE_RETURN_IF_ERROR(f.Int("intermediate_size", &c->intermediate_size));
  MOE_RETURN_IF_ERROR(f.Int("moe_intermediate_size", &c->expert_intermediate_size));
  MOE_RETURN_IF_ERROR(f.Int("num_experts", &c->num_experts));
  MOE_RETURN_IF_ERROR(f.BoolOr("norm_topk_prob", false, &c->norm_topk_prob));
  MOE_RETURN_IF_ERROR(f.DoubleOr("rms_norm_eps", 1e-6, &c->rms_norm_eps));
  MOE_RETURN_IF_ERROR(f.DoubleOr("rope_theta", 10000.0, &c->rope_theta));
  MOE_RETURN_IF_ERROR(f.IntOr("max_position_embeddings", 32768, &c->max_position_embeddings));
  MOE_RETURN_IF_ERROR(f.IntOr("decoder_sparse_step", 1, &c->decoder_sparse_step));
  MOE_RETURN_IF_ERROR(f.IntList("mlp_only_layers", &c->mlp_only_layers));
  bool use_sliding_window = false;
  MOE_RETURN_IF_ERROR(f.BoolOr("use_sliding_window", false, &use_sliding_window));
  std::optional<int> window;
  MOE_RETURN_IF_ERROR(f.OptInt("sliding_window", &window));
  if (use_sliding_window) c->sliding_window = window;
  if (c->architecture == Architecture::kQwen3Moe) {
    c->qk_norm = true;
    MOE_RETURN_IF_ERROR(f.BoolOr("attention_bias", false, &c->attention_bias));
    c->attention_out_bias = c->attention_bias;
    return absl::OkStatus();
  }
  // HF Qwen2MoeAttention: q/k/v Linear(bias=True), o_proj bias=False. Newer configs may spell
  // it `qkv_bias`.
  MOE_RETURN_IF_ERROR(f.BoolOr("qkv_bias", true, &c->attention_bias));
  return f.IntOr("shared_expert_intermediate_size", 0, &c->shared_expert_intermediate_size);
}

absl::Status ParseDeepseekRouting(const Fields& f, ModelConfig* c) {
  MOE_RETURN_IF_ERROR(f.IntOr("first_k_dense_replace", 0, &c->first_k_dense_replace));
  MOE_RETURN_IF_ERROR(f.IntOr("moe_layer_freq", 1, &c->moe_layer_freq));
  MOE_RETURN_IF_ERROR(f.IntOr("n_shared_experts", 0, &c->n_shared_experts));
  MOE_RETURN_IF_ERROR(f.DoubleOr("routed_scaling_factor", 1.0, &c->routed_scaling_factor));
  MOE_RETURN_IF_ERROR(f.IntOr("n_group", 1, &c->n_group));
  MOE_RETURN_IF_ERROR(f.IntOr("topk_group", 1, &c->topk_group));
  std::string scoring, method;
  MOE_RETURN_IF_ERROR(f.StringOr("scoring_func", "sigmoid", &scoring));
  if (scoring == "softmax") {
    c->scoring_func = ScoringFunc::kSoftmax;
  } else if (scoring == "sigmoid") {
    c->scoring_func = ScoringFunc::kSigmoid;
  } else {
    return FieldError("scoring_func", absl::StrCat("has unknown value \"", scoring,
                                                   "\" (expected softmax or sigmoid)"));
  }
  MOE_RETURN_IF_ERROR(f.StringOr("topk_method", "noaux_tc", &method));
  if (method == "greedy") {
    c->topk_method = TopkMethod::kGreedy;
  } else if (method == "group_limited_greedy") {
    c->topk_method = TopkMethod::kGroupLimitedGreedy;
  } else if (method == "noaux_tc") {
    c->topk_method = TopkMethod::kNoauxTc;
  } else {
    return FieldError("topk_method",
                      absl::StrCat("has unknown value \"", method,
                                   "\" (expected greedy, group_limited_greedy or noaux_tc)"));
  }
  return absl::OkStatus();
}

absl::Status ParseDeepseek(const Fields& f, ModelConfig* c) {
  MOE_RETURN_IF_ERROR(f.Int("intermediate_size", &c->intermediate_size));
  MOE_RETURN_IF_ERROR(f.Int("moe_intermediate_size", &c->expert_intermediate_size));
  MOE_RETURN_IF_ERROR(f.Int("n_routed_experts", &c->num_experts));
  MOE_RETURN_IF_ERROR(f.BoolOr("norm_topk_prob", true, &c->norm_topk_prob));
  MOE_RETURN_IF_ERROR(f.DoubleOr("rms_norm_eps", 1e-6, &c->rms_norm_eps));
  MOE_RETURN_IF_ERROR(f.DoubleOr("rope_theta", 10000.0, &c->rope_theta));
  MOE_RETURN_IF_ERROR(f.IntOr("max_position_embeddings", 4096, &c->max_position_embeddings));
  MOE_RETURN_IF_ERROR(ParseDeepseekRouting(f, c));
  MOE_RETURN_IF_ERROR(f.OptInt("q_lora_rank", &c->q_lora_rank));
  MOE_RETURN_IF_ERROR(f.Int("kv_lora_rank", &c->kv_lora_rank));
  MOE_RETURN_IF_ERROR(f.Int("qk_rope_head_dim", &c->qk_rope_head_dim));
  MOE_RETURN_IF_ERROR(f.Int("qk_nope_head_dim", &c->qk_nope_head_dim));
  MOE_RETURN_IF_ERROR(f.Int("v_head_dim", &c->v_head_dim));
  MOE_RETURN_IF_ERROR(f.BoolOr("attention_bias", false, &c->attention_bias));
  c->attention_out_bias = c->attention_bias;
  return absl::OkStatus();
}

absl::Status ParseArchSpecific(const Fields& f, ModelConfig* c) {
  switch (c->architecture) {
    case Architecture::kMixtral:
      return ParseMixtral(f, c);
    case Architecture::kQwen2Moe:
    case Architecture::kQwen3Moe:
      return ParseQwen(f, c);
    case Architecture::kDeepseekV3:
      return ParseDeepseek(f, c);
  }
  return absl::OkStatus();
}

absl::Status ValidateDeepseek(const ModelConfig& c) {
  MOE_RETURN_IF_ERROR(NonNegative("first_k_dense_replace", c.first_k_dense_replace));
  MOE_RETURN_IF_ERROR(Positive("moe_layer_freq", c.moe_layer_freq));
  MOE_RETURN_IF_ERROR(NonNegative("n_shared_experts", c.n_shared_experts));
  MOE_RETURN_IF_ERROR(Positive("n_group", c.n_group));
  MOE_RETURN_IF_ERROR(Positive("topk_group", c.topk_group));
  if (c.num_experts % c.n_group != 0) {
    return FieldError("n_group", absl::StrCat("(", c.n_group, ") must divide n_routed_experts (",
                                              c.num_experts, ")"));
  }
  if (c.topk_group > c.n_group) {
    return FieldError("topk_group",
                      absl::StrCat("(", c.topk_group, ") must be <= n_group (", c.n_group, ")"));
  }
  if (!(c.routed_scaling_factor > 0))
    return FieldError("routed_scaling_factor", "must be positive");
  if (c.q_lora_rank.has_value()) MOE_RETURN_IF_ERROR(Positive("q_lora_rank", *c.q_lora_rank));
  MOE_RETURN_IF_ERROR(Positive("kv_lora_rank", c.kv_lora_rank));
  MOE_RETURN_IF_ERROR(Positive("qk_rope_head_dim", c.qk_rope_head_dim));
  MOE_RETURN_IF_ERROR(NonNegative("qk_nope_head_dim", c.qk_nope_head_dim));
  MOE_RETURN_IF_ERROR(Positive("v_head_dim", c.v_head_dim));
  return absl::OkStatus();
}

absl::Status Validate(const ModelConfig& c) {
  MOE_RETURN_IF_ERROR(Positive("vocab_size", c.vocab_size));
  MOE_RETURN_IF_ERROR(Positive("hidden_size", c.hidden_size));
  MOE_RETURN_IF_ERROR(Positive("num_hidden_layers", c.num_hidden_layers));
  MOE_RETURN_IF_ERROR(Positive("num_attention_heads", c.num_attention_heads));
  MOE_RETURN_IF_ERROR(Positive("num_key_value_heads", c.num_key_value_heads));
  MOE_RETURN_IF_ERROR(Positive("head_dim", c.head_dim));
  MOE_RETURN_IF_ERROR(Positive("max_position_embeddings", c.max_position_embeddings));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return FieldError("num_key_value_heads", absl::StrCat("(", c.num_key_value_heads,
                                                          ") must divide num_attention_heads (",
                                                          c.num_attention_heads, ")"));
  }
  const bool mixtral = c.architecture == Architecture::kMixtral;
  const char* expert_width_key = mixtral ? "intermediate_size" : "moe_intermediate_size";
  const char* experts_key = mixtral                                       ? "num_local_experts"
                            : c.architecture == Architecture::kDeepseekV3 ? "n_routed_experts"
                                                                          : "num_experts";
  MOE_RETURN_IF_ERROR(Positive("intermediate_size", c.intermediate_size));
  MOE_RETURN_IF_ERROR(Positive(expert_width_key, c.expert_intermediate_size));
  MOE_RETURN_IF_ERROR(Positive(experts_key, c.num_experts));
  MOE_RETURN_IF_ERROR(Positive("num_experts_per_tok", c.num_experts_per_tok));
  if (c.num_experts_per_tok > c.num_experts) {
    return FieldError("num_experts_per_tok",
                      absl::StrCat("(", c.num_experts_per_tok, ") must be <= ", experts_key, " (",
                                   c.num_experts, ")"));
  }
  if (!(c.rms_norm_eps > 0)) return FieldError("rms_norm_eps", "must be positive");
  if (!(c.rope_theta > 0)) return FieldError("rope_theta", "must be positive");
  if (c.sliding_window.has_value())
    MOE_RETURN_IF_ERROR(Positive("sliding_window", *c.sliding_window));
  MOE_RETURN_IF_ERROR(
      NonNegative("shared_expert_intermediate_size", c.shared_expert_intermediate_size));
  MOE_RETURN_IF_ERROR(Positive("decoder_sparse_step", c.decoder_sparse_step));
  for (int l : c.mlp_only_layers) {
    if (l < 0 || l >= c.num_hidden_layers) {
      return FieldError("mlp_only_layers",
                        absl::StrCat("holds layer ", l, " outside [0, ", c.num_hidden_layers, ")"));
    }
  }
  for (int id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return FieldError("eos_token_id", absl::StrCat("(", id, ") must be in [0, vocab_size)"));
    }
  }
  if (c.bos_token_id && (*c.bos_token_id < 0 || *c.bos_token_id >= c.vocab_size)) {
    return FieldError("bos_token_id",
                      absl::StrCat("(", *c.bos_token_id, ") must be in [0, vocab_size)"));
  }
  // pad_token_id is not checked against the vocabulary: some released configs carry one
  // outside it, and nothing indexes with it.
  if (c.architecture == Architecture::kDeepseekV3) return ValidateDeepseek(c);
  return absl::OkStatus();
}

}  // namespace

std::string_view ArchitectureName(Architecture arch) {
  switch (arch) {
    case Architecture::kMixtral:
      return "MixtralForCausalLM";
    case Architecture::kQwen3Moe:
      return "Qwen3MoeForCausalLM";
    case Architecture::kQwen2Moe:
      return "Qwen2MoeForCausalLM";
    case Architecture::kDeepseekV3:
      return "DeepseekV3ForCausalLM";
  }
  return "?";
}

absl::StatusOr<Architecture> ParseArchitecture(std::string_view name) {
  for (Architecture a : {Architecture::kMixtral, Architecture::kQwen3Moe, Architecture::kQwen2Moe,
                         Architecture::kDeepseekV3}) {
    if (name == ArchitectureName(a)) return a;
  }
  return FieldError("architectures",
                    absl::StrCat("names an unsupported architecture \"", Sv(name),
                                 "\" (supported: MixtralForCausalLM, Qwen3MoeForCausalLM, "
                                 "Qwen2MoeForCausalLM, DeepseekV3ForCausalLM)"));
}

bool ModelConfig::IsMoeLayer(int layer) const {
  if (layer < 0 || layer >= num_hidden_layers) return false;
  switch (architecture) {
    case Architecture::kMixtral:
      return true;
    case Architecture::kQwen2Moe:
    case Architecture::kQwen3Moe:
      for (int l : mlp_only_layers) {
        if (l == layer) return false;
      }
      return num_experts > 0 && decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
    case Architecture::kDeepseekV3:
      return num_experts > 0 && moe_layer_freq > 0 && layer >= first_k_dense_replace &&
             layer % moe_layer_freq == 0;
  }
  return false;
}

int ModelConfig::NumMoeLayers() const {
  int n = 0;
  for (int l = 0; l < num_hidden_layers; ++l) n += IsMoeLayer(l) ? 1 : 0;
  return n;
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view text) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError("config.json: malformed JSON");
  if (!root.is_object()) return absl::InvalidArgumentError("config.json: must be a JSON object");
  // Every access below checks types first; the try only guards against surprises in the
  // library (e.g. allocation failure) so no exception crosses this API.
  try {
    Fields f(root);
    ModelConfig c;
    const json* archs = f.Get("architectures");
    if (archs == nullptr) return FieldError("architectures", "is required");
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
      return FieldError("architectures",
                        absl::StrCat("must be a non-empty list of strings, got ", Excerpt(*archs)));
    }
    MOE_ASSIGN_OR_RETURN(c.architecture, ParseArchitecture((*archs)[0].get<std::string>()));
    MOE_RETURN_IF_ERROR(f.StringOr("model_type", "", &c.model_type));
    MOE_RETURN_IF_ERROR(f.StringOr("hidden_act", "silu", &c.hidden_act));
    MOE_RETURN_IF_ERROR(f.Int("vocab_size", &c.vocab_size));
    MOE_RETURN_IF_ERROR(f.Int("hidden_size", &c.hidden_size));
    MOE_RETURN_IF_ERROR(f.Int("num_hidden_layers", &c.num_hidden_layers));
    MOE_RETURN_IF_ERROR(f.Int("num_attention_heads", &c.num_attention_heads));
    MOE_RETURN_IF_ERROR(Positive("num_attention_heads", c.num_attention_heads));
    MOE_RETURN_IF_ERROR(
        f.IntOr("num_key_value_heads", c.num_attention_heads, &c.num_key_value_heads));
    MOE_RETURN_IF_ERROR(f.Int("num_experts_per_tok", &c.num_experts_per_tok));
    MOE_RETURN_IF_ERROR(f.BoolOr("tie_word_embeddings", false, &c.tie_word_embeddings));
    MOE_RETURN_IF_ERROR(f.OptInt("bos_token_id", &c.bos_token_id));
    MOE_RETURN_IF_ERROR(f.IntOrIntList("eos_token_id", &c.eos_token_ids));
    MOE_RETURN_IF_ERROR(f.OptInt("pad_token_id", &c.pad_token_id));
    if (const json* rs = f.Get("rope_scaling")) {
      RopeScaling scaling;
      MOE_RETURN_IF_ERROR(ParseRopeScaling(*rs, &scaling));
      c.rope_scaling = scaling;
    }
    MOE_RETURN_IF_ERROR(ParseArchSpecific(f, &c));
    MOE_RETURN_IF_ERROR(ParseRopeParameters(f, &c));
    if (c.architecture == Architecture::kDeepseekV3) {
      c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
    } else {
      int def = c.hidden_size > 0 ? c.hidden_size / c.num_attention_heads : 0;
      MOE_RETURN_IF_ERROR(f.IntOr("head_dim", def, &c.head_dim));
    }
    MOE_RETURN_IF_ERROR(Validate(c));
    return c;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", e.what()));
  }
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir) {
  std::string path = dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<ModelConfig> c = ParseModelConfig(ss.str());
  if (!c.ok()) {
    return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  }
  return c;
}

std::string DescribeModelConfig(const ModelConfig& c) {
  std::string s = absl::StrCat(Sv(ArchitectureName(c.architecture)), ": ", c.num_hidden_layers,
                               " layers (", c.NumMoeLayers(), " MoE), hidden ", c.hidden_size,
                               ", heads ", c.num_attention_heads, "/", c.num_key_value_heads, "x",
                               c.head_dim, ", ", c.num_experts, " experts top-",
                               c.num_experts_per_tok, " x ", c.expert_intermediate_size);
  if (c.shared_expert_intermediate_size > 0) {
    absl::StrAppend(&s, ", shared expert ", c.shared_expert_intermediate_size);
  }
  if (c.n_shared_experts > 0) absl::StrAppend(&s, ", ", c.n_shared_experts, " shared experts");
  absl::StrAppend(&s, ", vocab ", c.vocab_size, ", context ", c.max_position_embeddings);
  if (c.qk_norm) absl::StrAppend(&s, ", q/k norm");
  if (c.attention_bias) absl::StrAppend(&s, ", qkv bias");
  absl::StrAppend(&s, c.norm_topk_prob ? ", top-k renormalised" : ", top-k not renormalised");
  return s;
}

}  // namespace moe::model
