#include "model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace moe::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

// Qwen1.5-MoE-A2.7B's config.json.
constexpr char kQwen15MoeA27B[] = R"({
  "architectures": ["Qwen2MoeForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 8192,
  "max_window_layers": 21,
  "model_type": "qwen2_moe",
  "num_attention_heads": 16,
  "num_hidden_layers": 24,
  "num_key_value_heads": 16,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.39.0.dev0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936,
  "decoder_sparse_step": 1,
  "moe_intermediate_size": 1408,
  "shared_expert_intermediate_size": 5632,
  "num_experts_per_tok": 4,
  "num_experts": 60,
  "norm_topk_prob": false,
  "output_router_logits": false,
  "router_aux_loss_coef": 0.001
})";

// DeepSeek-V3's config.json (auto_map omitted).
constexpr char kDeepseekV3[] = R"({
  "architectures": ["DeepseekV3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "ep_size": 1,
  "first_k_dense_replace": 3,
  "hidden_act": "silu",
  "hidden_size": 7168,
  "initializer_range": 0.02,
  "intermediate_size": 18432,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v3",
  "moe_intermediate_size": 2048,
  "moe_layer_freq": 1,
  "n_group": 8,
  "n_routed_experts": 256,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 61,
  "num_key_value_heads": 128,
  "num_nextn_predict_layers": 1,
  "pretraining_tp": 1,
  "q_lora_rank": 1536,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                          "quant_method": "fp8", "weight_block_size": [128, 128]},
  "rms_norm_eps": 1e-06,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                   "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                   "type": "yarn"},
  "rope_theta": 10000,
  "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 4,
  "topk_method": "noaux_tc",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 129280
})";

// Mixtral-8x7B-v0.1's config.json.
constexpr char kMixtral8x7B[] = R"({
  "architectures": ["MixtralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mixtral",
  "num_attention_heads": 32,
  "num_experts_per_tok": 2,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "num_local_experts": 8,
  "output_router_logits": false,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.02,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.36.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

void ExpectInvalidHelper(const std::string& text, const std::string& field) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(text);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(field));
}

std::string GoldenDir(const std::string& model) {
  return std::string(MOE_GOLDEN_DIR) + "/" + model + "/hf-f32";
}

TEST(ModelConfigTest, GoldenTinyMixtral) {
  absl::StatusOr<ModelConfig> c = LoadModelConfig(GoldenDir("tiny-mixtral"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kMixtral);
  EXPECT_EQ(c->model_type, "mixtral");
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_hidden_layers, 4);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->expert_intermediate_size, 128);
  EXPECT_EQ(c->intermediate_size, 128);
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->max_position_embeddings, 512);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, 510);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(509));
  EXPECT_EQ(c->pad_token_id, 511);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->shared_expert_intermediate_size, 0);
  EXPECT_FALSE(c->rope_scaling.has_value());
  EXPECT_FALSE(c->sliding_window.has_value());
  for (int l = 0; l < 4; ++l) EXPECT_TRUE(c->IsMoeLayer(l)) << l;
  EXPECT_FALSE(c->IsMoeLayer(4));
  EXPECT_FALSE(c->IsMoeLayer(-1));
  EXPECT_EQ(c->NumMoeLayers(), 4);
}

TEST(ModelConfigTest, GoldenTinyQwen3Moe) {
  absl::StatusOr<ModelConfig> c = LoadModelConfig(GoldenDir("tiny-qwen3moe"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kQwen3Moe);
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->intermediate_size, 256);
  EXPECT_EQ(c->expert_intermediate_size, 128);
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_FALSE(c->attention_out_bias);
  EXPECT_EQ(c->decoder_sparse_step, 1);
  EXPECT_TRUE(c->mlp_only_layers.empty());
  EXPECT_EQ(c->shared_expert_intermediate_size, 0);
  EXPECT_EQ(c->NumMoeLayers(), 4);
  EXPECT_EQ(c->scoring_func, ScoringFunc::kSoftmax);
}

TEST(ModelConfigTest, Mixtral8x7B) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(kMixtral8x7B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 128);  // default hidden / heads
  EXPECT_EQ(c->expert_intermediate_size, 14336);
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_FALSE(c->sliding_window.has_value());
  EXPECT_THAT(DescribeModelConfig(*c), HasSubstr("MixtralForCausalLM: 32 layers (32 MoE)"));
}

TEST(ModelConfigTest, Qwen15MoeA27B) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(kQwen15MoeA27B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kQwen2Moe);
  EXPECT_EQ(c->vocab_size, 151936);
  EXPECT_EQ(c->hidden_size, 2048);
  EXPECT_EQ(c->num_hidden_layers, 24);
  EXPECT_EQ(c->num_attention_heads, 16);
  EXPECT_EQ(c->num_key_value_heads, 16);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->intermediate_size, 5632);
  EXPECT_EQ(c->expert_intermediate_size, 1408);
  EXPECT_EQ(c->shared_expert_intermediate_size, 5632);
  EXPECT_EQ(c->num_experts, 60);
  EXPECT_EQ(c->num_experts_per_tok, 4);
  EXPECT_FALSE(c->norm_topk_prob);
  EXPECT_TRUE(c->attention_bias);       // Qwen2Moe q/k/v always carry a bias
  EXPECT_FALSE(c->attention_out_bias);  // o_proj does not
  EXPECT_FALSE(c->qk_norm);
  EXPECT_FALSE(c->sliding_window.has_value());  // use_sliding_window is false
  EXPECT_EQ(c->bos_token_id, 151643);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(151643));
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->max_position_embeddings, 8192);
  EXPECT_EQ(c->NumMoeLayers(), 24);
}

TEST(ModelConfigTest, QwenSparseStepAndMlpOnlyLayers) {
  json j = json::parse(kQwen15MoeA27B);
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  j["use_sliding_window"] = true;
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->IsMoeLayer(0));  // (0 + 1) % 2 != 0
  EXPECT_TRUE(c->IsMoeLayer(1));
  EXPECT_FALSE(c->IsMoeLayer(2));
  EXPECT_FALSE(c->IsMoeLayer(3));  // mlp_only_layers
  EXPECT_TRUE(c->IsMoeLayer(5));
  EXPECT_EQ(c->NumMoeLayers(), 11);
  EXPECT_EQ(c->sliding_window, 32768);
}

TEST(ModelConfigTest, DeepseekV3) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(kDeepseekV3);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kDeepseekV3);
  EXPECT_EQ(c->vocab_size, 129280);
  EXPECT_EQ(c->hidden_size, 7168);
  EXPECT_EQ(c->num_hidden_layers, 61);
  EXPECT_EQ(c->intermediate_size, 18432);
  EXPECT_EQ(c->expert_intermediate_size, 2048);
  EXPECT_EQ(c->num_experts, 256);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->n_shared_experts, 1);
  EXPECT_EQ(c->first_k_dense_replace, 3);
  EXPECT_EQ(c->moe_layer_freq, 1);
  EXPECT_DOUBLE_EQ(c->routed_scaling_factor, 2.5);
  EXPECT_EQ(c->n_group, 8);
  EXPECT_EQ(c->topk_group, 4);
  EXPECT_EQ(c->scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c->topk_method, TopkMethod::kNoauxTc);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->q_lora_rank, 1536);
  EXPECT_EQ(c->kv_lora_rank, 512);
  EXPECT_EQ(c->qk_rope_head_dim, 64);
  EXPECT_EQ(c->qk_nope_head_dim, 128);
  EXPECT_EQ(c->v_head_dim, 128);
  EXPECT_EQ(c->head_dim, 192);
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->type, "yarn");
  EXPECT_DOUBLE_EQ(c->rope_scaling->factor, 40.0);
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c->rope_scaling->mscale_all_dim, 1.0);
  EXPECT_FALSE(c->IsMoeLayer(0));
  EXPECT_FALSE(c->IsMoeLayer(2));
  EXPECT_TRUE(c->IsMoeLayer(3));
  EXPECT_TRUE(c->IsMoeLayer(60));
  EXPECT_EQ(c->NumMoeLayers(), 58);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);  // an integer in the JSON
}

TEST(ModelConfigTest, DeepseekNullQLoraRankAndEosList) {
  json j = json::parse(kDeepseekV3);
  j["q_lora_rank"] = nullptr;
  j["eos_token_id"] = {1, 2};
  j["moe_layer_freq"] = 2;
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->q_lora_rank.has_value());
  EXPECT_THAT(c->eos_token_ids, ElementsAre(1, 2));
  EXPECT_FALSE(c->IsMoeLayer(3));
  EXPECT_TRUE(c->IsMoeLayer(4));
}

TEST(ModelConfigTest, TransformersV5RopeParameters) {
  json j = json::parse(kQwen15MoeA27B);
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_theta", 5e6}, {"rope_type", "default"}};
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 5e6);
  EXPECT_FALSE(c->rope_scaling.has_value());

  j["rope_parameters"] = {{"rope_theta", 1e4},
                          {"rope_type", "yarn"},
                          {"factor", 4.0},
                          {"original_max_position_embeddings", 32768}};
  c = ParseModelConfig(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e4);
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->type, "yarn");
  EXPECT_DOUBLE_EQ(c->rope_scaling->factor, 4.0);
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 32768);

  j["rope_parameters"] = "yarn";
  ExpectInvalidHelper(j.dump(), "rope_parameters");
}

TEST(ModelConfigTest, DefaultsWhenOptionalKeysAbsent) {
  json j = json::parse(kQwen15MoeA27B);
  for (const char* k : {"num_key_value_heads", "norm_topk_prob", "rms_norm_eps", "rope_theta",
                        "max_position_embeddings", "eos_token_id", "bos_token_id",
                        "decoder_sparse_step", "tie_word_embeddings"}) {
    j.erase(k);
  }
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 16);
  EXPECT_FALSE(c->norm_topk_prob);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->max_position_embeddings, 32768);
  EXPECT_TRUE(c->eos_token_ids.empty());
  EXPECT_FALSE(c->bos_token_id.has_value());

  json q3 = json::parse(kQwen15MoeA27B);
  q3["architectures"] = {"Qwen3MoeForCausalLM"};
  q3.erase("norm_topk_prob");
  q3.erase("shared_expert_intermediate_size");
  c = ParseModelConfig(q3.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->norm_topk_prob);  // Qwen3MoeConfig default
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->attention_bias);
}

// Each mutation must fail with INVALID_ARGUMENT whose message names `field`.
struct BadCase {
  std::string name;
  std::string base;  // "mixtral", "qwen2", "deepseek"
  std::function<void(json&)> mutate;
  std::string field;
};

void ExpectInvalid(const std::string& text, const std::string& field, const std::string& what) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(text);
  ASSERT_FALSE(c.ok()) << what;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << what << ": " << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(field)) << what;
}

TEST(ModelConfigTest, CorruptedConfigsNameTheField) {
  std::vector<BadCase> cases = {
      {"missing arch", "mixtral", [](json& j) { j.erase("architectures"); }, "architectures"},
      {"unknown arch", "mixtral", [](json& j) { j["architectures"] = {"LlamaForCausalLM"}; },
       "LlamaForCausalLM"},
      {"arch not list", "mixtral", [](json& j) { j["architectures"] = 3; }, "architectures"},
      {"empty arch list", "mixtral", [](json& j) { j["architectures"] = json::array(); },
       "architectures"},
      {"missing vocab", "mixtral", [](json& j) { j.erase("vocab_size"); }, "vocab_size"},
      {"zero hidden", "mixtral", [](json& j) { j["hidden_size"] = 0; }, "hidden_size"},
      {"negative layers", "qwen2", [](json& j) { j["num_hidden_layers"] = -2; },
       "num_hidden_layers"},
      {"string heads", "mixtral", [](json& j) { j["num_attention_heads"] = "32"; },
       "num_attention_heads"},
      {"fractional heads", "mixtral", [](json& j) { j["num_attention_heads"] = 32.5; },
       "num_attention_heads"},
      {"huge vocab", "mixtral", [](json& j) { j["vocab_size"] = 1e12; }, "vocab_size"},
      {"kv not dividing", "mixtral", [](json& j) { j["num_key_value_heads"] = 5; },
       "num_key_value_heads"},
      {"zero kv heads", "mixtral", [](json& j) { j["num_key_value_heads"] = 0; },
       "num_key_value_heads"},
      {"missing mixtral experts", "mixtral", [](json& j) { j.erase("num_local_experts"); },
       "num_local_experts"},
      {"missing mixtral width", "mixtral", [](json& j) { j.erase("intermediate_size"); },
       "intermediate_size"},
      {"top-k > experts", "mixtral", [](json& j) { j["num_experts_per_tok"] = 9; },
       "num_experts_per_tok"},
      {"zero top-k", "qwen2", [](json& j) { j["num_experts_per_tok"] = 0; }, "num_experts_per_tok"},
      {"missing qwen experts", "qwen2", [](json& j) { j.erase("num_experts"); }, "num_experts"},
      {"missing moe width", "qwen2", [](json& j) { j.erase("moe_intermediate_size"); },
       "moe_intermediate_size"},
      {"zero moe width", "qwen2", [](json& j) { j["moe_intermediate_size"] = 0; },
       "moe_intermediate_size"},
      {"norm_topk_prob string", "qwen2", [](json& j) { j["norm_topk_prob"] = "yes"; },
       "norm_topk_prob"},
      {"eps string", "qwen2", [](json& j) { j["rms_norm_eps"] = "1e-6"; }, "rms_norm_eps"},
      {"eps zero", "qwen2", [](json& j) { j["rms_norm_eps"] = 0; }, "rms_norm_eps"},
      {"theta negative", "qwen2", [](json& j) { j["rope_theta"] = -1; }, "rope_theta"},
      {"eos out of vocab", "qwen2", [](json& j) { j["eos_token_id"] = 151936; }, "eos_token_id"},
      {"eos list of strings", "qwen2", [](json& j) { j["eos_token_id"] = {"a"}; }, "eos_token_id"},
      {"mlp_only_layers out of range", "qwen2", [](json& j) { j["mlp_only_layers"] = {24}; },
       "mlp_only_layers"},
      {"mlp_only_layers not list", "qwen2", [](json& j) { j["mlp_only_layers"] = 3; },
       "mlp_only_layers"},
      {"zero sparse step", "qwen2", [](json& j) { j["decoder_sparse_step"] = 0; },
       "decoder_sparse_step"},
      {"negative shared", "qwen2", [](json& j) { j["shared_expert_intermediate_size"] = -1; },
       "shared_expert_intermediate_size"},
      {"window zero", "qwen2",
       [](json& j) {
         j["use_sliding_window"] = true;
         j["sliding_window"] = 0;
       },
       "sliding_window"},
      {"head_dim zero", "mixtral", [](json& j) { j["head_dim"] = 0; }, "head_dim"},
      {"rope_scaling not object", "deepseek", [](json& j) { j["rope_scaling"] = 4; },
       "rope_scaling"},
      {"rope_scaling no type", "deepseek", [](json& j) { j["rope_scaling"].erase("type"); },
       "rope_scaling"},
      {"unknown scoring", "deepseek", [](json& j) { j["scoring_func"] = "tanh"; }, "scoring_func"},
      {"unknown topk method", "deepseek", [](json& j) { j["topk_method"] = "best"; },
       "topk_method"},
      {"n_group not dividing", "deepseek", [](json& j) { j["n_group"] = 7; }, "n_group"},
      {"topk_group > n_group", "deepseek", [](json& j) { j["topk_group"] = 9; }, "topk_group"},
      {"missing kv_lora_rank", "deepseek", [](json& j) { j.erase("kv_lora_rank"); },
       "kv_lora_rank"},
      {"zero moe_layer_freq", "deepseek", [](json& j) { j["moe_layer_freq"] = 0; },
       "moe_layer_freq"},
      {"missing routed experts", "deepseek", [](json& j) { j.erase("n_routed_experts"); },
       "n_routed_experts"},
      {"negative q_lora_rank", "deepseek", [](json& j) { j["q_lora_rank"] = -5; }, "q_lora_rank"},
  };
  for (const BadCase& bc : cases) {
    const char* base = bc.base == "mixtral" ? kMixtral8x7B
                       : bc.base == "qwen2" ? kQwen15MoeA27B
                                            : kDeepseekV3;
    json j = json::parse(base);
    bc.mutate(j);
    ExpectInvalid(j.dump(), bc.field, bc.name);
  }
}

TEST(ModelConfigTest, MalformedJsonIsAnErrorNotACrash) {
  for (const char* text :
       {"", "{", "[]", "null", "42", "\"str\"", "{\"architectures\": [", "{\"a\": 1,}",
        "\xff\xfe{}", "{\"architectures\": [\"MixtralForCausalLM\"]}"}) {
    absl::StatusOr<ModelConfig> c = ParseModelConfig(text);
    EXPECT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  // Every prefix of a valid config is an error, never a crash.
  std::string full = kDeepseekV3;
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_FALSE(ParseModelConfig(full.substr(0, n)).ok()) << n;
  }
}

TEST(ModelConfigTest, MissingFolderIsNotFound) {
  absl::StatusOr<ModelConfig> c = LoadModelConfig("/nonexistent/folder");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelConfigTest, ArchitectureNamesRoundTrip) {
  for (Architecture a : {Architecture::kMixtral, Architecture::kQwen3Moe, Architecture::kQwen2Moe,
                         Architecture::kDeepseekV3}) {
    absl::StatusOr<Architecture> b = ParseArchitecture(ArchitectureName(a));
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(*b, a);
  }
  absl::StatusOr<Architecture> bad = ParseArchitecture("GPT2LMHeadModel");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("architectures"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("GPT2LMHeadModel"));
}

}  // namespace
}  // namespace moe::model
