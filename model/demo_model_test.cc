#include "model/demo_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/file.h"
#include "model/config.h"
#include "model/demo_tokenizer.h"
#include "model/safetensors.h"

namespace moe::model {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "moe_demo_XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

DemoModelStats Generate(const std::string& dir, Architecture arch, DType dtype = DType::kBF16,
                        uint64_t seed = 1234, int threads = 2) {
  DemoModelParams p;
  p.out_dir = dir;
  p.preset = DemoPreset::kTiny;
  p.arch = arch;
  p.dtype = dtype;
  p.seed = seed;
  p.threads = threads;
  absl::StatusOr<DemoModelStats> s = WriteDemoModel(p);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : DemoModelStats{};
}

class DemoModelArchTest : public ::testing::TestWithParam<Architecture> {};

TEST_P(DemoModelArchTest, TinyLoadsBackWithEveryTensor) {
  TempDir dir;
  const Architecture arch = GetParam();
  DemoModelStats stats = Generate(dir.path(), arch);

  absl::StatusOr<ModelConfig> c = LoadModelConfig(dir.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, arch);
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_hidden_layers, 4);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->num_experts, 8);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_EQ(c->expert_intermediate_size, 128);
  EXPECT_EQ(c->max_position_embeddings, 512);
  EXPECT_EQ(c->qk_norm, arch == Architecture::kQwen3Moe);
  EXPECT_EQ(c->attention_bias, arch == Architecture::kQwen2Moe);
  EXPECT_EQ(c->shared_expert_intermediate_size, arch == Architecture::kQwen2Moe ? 256 : 0);
  EXPECT_EQ(c->norm_topk_prob, arch != Architecture::kQwen2Moe);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{509});
  EXPECT_EQ(c->bos_token_id, 509);

  auto store = WeightStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<TensorSpec> specs = HfTensorSpecs(*c);
  std::set<std::string> expected;
  int64_t params = 0;
  for (const TensorSpec& s : specs) {
    expected.insert(s.name);
    auto t = (*store)->Get(s.name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->dtype, DType::kBF16) << s.name;
    EXPECT_EQ(t->shape, s.shape) << s.name;
    params += t->numel();
  }
  const std::vector<std::string> names = (*store)->Names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
  EXPECT_EQ(params, stats.num_params);
  EXPECT_EQ((*store)->TotalBytes(), static_cast<size_t>(params) * 2);

  // Spot checks of the HF names per architecture.
  auto has = [&](const std::string& n) { return (*store)->Has(n); };
  EXPECT_TRUE(has("model.embed_tokens.weight"));
  EXPECT_TRUE(has("model.norm.weight"));
  EXPECT_TRUE(has("lm_head.weight"));
  EXPECT_TRUE(has("model.layers.3.input_layernorm.weight"));
  EXPECT_TRUE(has("model.layers.3.post_attention_layernorm.weight"));
  EXPECT_TRUE(has("model.layers.3.self_attn.o_proj.weight"));
  switch (arch) {
    case Architecture::kMixtral:
      EXPECT_EQ(params, 903744);  // same shapes as the golden tiny-mixtral
      EXPECT_TRUE(has("model.layers.2.block_sparse_moe.gate.weight"));
      EXPECT_TRUE(has("model.layers.2.block_sparse_moe.experts.7.w1.weight"));
      EXPECT_TRUE(has("model.layers.2.block_sparse_moe.experts.7.w2.weight"));
      EXPECT_TRUE(has("model.layers.2.block_sparse_moe.experts.7.w3.weight"));
      EXPECT_FALSE(has("model.layers.0.self_attn.q_norm.weight"));
      break;
    case Architecture::kQwen3Moe:
      EXPECT_EQ(params, 903872);  // same shapes as the golden tiny-qwen3moe
      EXPECT_TRUE(has("model.layers.1.self_attn.q_norm.weight"));
      EXPECT_TRUE(has("model.layers.1.self_attn.k_norm.weight"));
      EXPECT_TRUE(has("model.layers.1.mlp.gate.weight"));
      EXPECT_TRUE(has("model.layers.1.mlp.experts.0.down_proj.weight"));
      EXPECT_FALSE(has("model.layers.1.mlp.shared_expert_gate.weight"));
      break;
    case Architecture::kQwen2Moe:
      EXPECT_TRUE(has("model.layers.1.self_attn.q_proj.bias"));
      EXPECT_TRUE(has("model.layers.1.self_attn.k_proj.bias"));
      EXPECT_TRUE(has("model.layers.1.self_attn.v_proj.bias"));
      EXPECT_FALSE(has("model.layers.1.self_attn.o_proj.bias"));
      EXPECT_TRUE(has("model.layers.1.mlp.shared_expert.gate_proj.weight"));
      EXPECT_TRUE(has("model.layers.1.mlp.shared_expert.down_proj.weight"));
      EXPECT_TRUE(has("model.layers.1.mlp.shared_expert_gate.weight"));
      EXPECT_FALSE(has("model.layers.1.self_attn.q_norm.weight"));
      break;
    case Architecture::kDeepseekV3:
      break;
  }

  // The other files are there and are JSON.
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                        "special_tokens_map.json"}) {
    json j = json::parse(ReadFile(dir.path() + "/" + f).value_or(""), nullptr, false);
    EXPECT_TRUE(j.is_object()) << f;
  }
  json gen = json::parse(ReadFile(dir.path() + "/generation_config.json").value_or(""));
  EXPECT_EQ(gen["eos_token_id"], json({509, 511}));
}

INSTANTIATE_TEST_SUITE_P(Archs, DemoModelArchTest,
                         ::testing::Values(Architecture::kMixtral, Architecture::kQwen3Moe,
                                           Architecture::kQwen2Moe));

TEST(DemoModelTest, SameSeedGivesByteIdenticalFiles) {
  TempDir a, b, c;
  Generate(a.path(), Architecture::kQwen3Moe, DType::kBF16, 7, /*threads=*/1);
  Generate(b.path(), Architecture::kQwen3Moe, DType::kBF16, 7, /*threads=*/3);
  Generate(c.path(), Architecture::kQwen3Moe, DType::kBF16, 8, /*threads=*/2);
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.json",
                        "tokenizer_config.json", "generation_config.json"}) {
    EXPECT_EQ(ReadFile(a.path() + "/" + f).value_or(""), ReadFile(b.path() + "/" + f).value_or(""))
        << f;
  }
  EXPECT_NE(ReadFile(a.path() + "/model.safetensors").value_or(""),
            ReadFile(c.path() + "/model.safetensors").value_or(""));
  EXPECT_EQ(ReadFile(a.path() + "/tokenizer.json").value_or(""),
            ReadFile(c.path() + "/tokenizer.json").value_or(""));
}

TEST(DemoModelTest, Bf16AndF32HoldTheSameValues) {
  TempDir a, b;
  Generate(a.path(), Architecture::kMixtral, DType::kBF16);
  Generate(b.path(), Architecture::kMixtral, DType::kF32);
  auto sa = WeightStore::Open(a.path());
  auto sb = WeightStore::Open(b.path());
  ASSERT_TRUE(sa.ok() && sb.ok());
  ASSERT_EQ((*sa)->Names(), (*sb)->Names());
  json cfg = json::parse(ReadFile(b.path() + "/config.json").value_or(""));
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  for (const std::string& name : (*sa)->Names()) {
    auto ta = (*sa)->Get(name);
    auto tb = (*sb)->Get(name);
    ASSERT_TRUE(ta.ok() && tb.ok());
    EXPECT_EQ(tb->dtype, DType::kF32);
    auto fa = ToF32(*ta, tb->shape);
    auto fb = ToF32(*tb, ta->shape);
    ASSERT_TRUE(fa.ok() && fb.ok());
    EXPECT_EQ(*fa, *fb) << name;
  }
}

struct Moments {
  double mean = 0, stddev = 0;
};
Moments MomentsOf(const std::vector<float>& v) {
  double s = 0, s2 = 0;
  for (float x : v) {
    s += x;
    s2 += static_cast<double>(x) * x;
  }
  Moments m;
  m.mean = s / static_cast<double>(v.size());
  m.stddev = std::sqrt(s2 / static_cast<double>(v.size()) - m.mean * m.mean);
  return m;
}

TEST(DemoModelTest, WeightDistributions) {
  auto c = DemoModelConfig(DemoPreset::kBenchMixtral, Architecture::kMixtral);
  ASSERT_TRUE(c.ok());
  std::map<std::string, TensorSpec> specs;
  for (const TensorSpec& s : HfTensorSpecs(*c)) specs[s.name] = s;

  const std::vector<float> embv = DemoTensorValues(specs.at("model.embed_tokens.weight"), 1, 1024);
  Moments emb = MomentsOf(embv);
  EXPECT_NEAR(emb.mean, 0.0, 0.01);
  EXPECT_NEAR(emb.stddev, 1.0, 0.01);
  // Shape of a standard normal: mass within 1, 2, 3 sigma; symmetric; tails present.
  int64_t in1 = 0, in2 = 0, in3 = 0, positive = 0, beyond4 = 0;
  for (float x : embv) {
    const float a = std::fabs(x);
    in1 += a < 1.0f;
    in2 += a < 2.0f;
    in3 += a < 3.0f;
    beyond4 += a > 4.0f;
    positive += x > 0.0f;
  }
  const double n = static_cast<double>(embv.size());  // 32.8M draws
  EXPECT_NEAR(in1 / n, 0.682689, 0.002);  // bf16 rounding moves the 1-sigma edge slightly
  EXPECT_NEAR(in2 / n, 0.954500, 0.001);
  EXPECT_NEAR(in3 / n, 0.997300, 0.0003);
  EXPECT_NEAR(positive / n, 0.5, 0.001);
  EXPECT_NEAR(beyond4 / n, 6.33e-5, 2e-5);
  Moments w2 = MomentsOf(DemoTensorValues(
      specs.at("model.layers.0.block_sparse_moe.experts.3.w2.weight"), 1, 1024));  // fan_in 2816
  EXPECT_NEAR(w2.mean, 0.0, 0.001);
  EXPECT_NEAR(w2.stddev, 1.0 / std::sqrt(2816.0), 0.01 / std::sqrt(2816.0));
  Moments norm = MomentsOf(DemoTensorValues(specs.at("model.norm.weight"), 1, 1024));
  EXPECT_NEAR(norm.mean, 1.0, 0.02);
  EXPECT_NEAR(norm.stddev, 0.1, 0.02);

  std::vector<float> head = DemoTensorValues(specs.at("lm_head.weight"), 1, 1024);
  for (int row : {128, 200, 255}) {
    for (int k = 0; k < 1024; ++k) ASSERT_EQ(head[row * 1024 + k], 0.0f) << row;
  }
  std::vector<float> rows_ok(head.begin() + 300 * 1024, head.end());
  EXPECT_NEAR(MomentsOf(rows_ok).stddev, 1.0 / 32.0, 0.001);

  // Different names give different streams; values are bf16-representable.
  std::vector<float> w1a =
      DemoTensorValues(specs.at("model.layers.0.block_sparse_moe.experts.0.w1.weight"), 1, 1024);
  std::vector<float> w1b =
      DemoTensorValues(specs.at("model.layers.0.block_sparse_moe.experts.1.w1.weight"), 1, 1024);
  EXPECT_NE(w1a, w1b);
  for (size_t i = 0; i < 1000; ++i) EXPECT_EQ(w1a[i], Bf16ToF32(F32ToBf16(w1a[i])));
}

TEST(DemoModelTest, PresetShapesAndParameterCounts) {
  auto count = [](const ModelConfig& c) {
    int64_t n = 0;
    for (const TensorSpec& s : HfTensorSpecs(c)) {
      int64_t k = 1;
      for (int64_t d : s.shape) k *= d;
      n += k;
    }
    return n;
  };
  auto mix = DemoModelConfig(DemoPreset::kBenchMixtral, Architecture::kMixtral);
  ASSERT_TRUE(mix.ok());
  EXPECT_EQ(mix->num_experts, 16);
  EXPECT_EQ(mix->expert_intermediate_size, 2816);
  // 2 x 32000 x 1024 (embeddings, lm_head) + 1024 (final norm) + 8 layers x
  // (2 x 1024^2 + 2 x 256 x 1024 (attention) + 2 x 1024 (norms) + 16 x 1024 (router)
  //  + 16 x 3 x 2816 x 1024 (experts)).
  const int64_t per_layer =
      2LL * 1024 * 1024 + 2LL * 256 * 1024 + 2048 + 16 * 1024 + 16LL * 3 * 2816 * 1024;
  EXPECT_EQ(count(*mix), 2LL * 32000 * 1024 + 1024 + 8 * per_layer);

  auto fine = DemoModelConfig(DemoPreset::kBenchFinegrained, Architecture::kQwen3Moe);
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ(fine->num_experts, 64);
  EXPECT_EQ(fine->num_experts_per_tok, 8);
  EXPECT_EQ(fine->num_hidden_layers, 16);
  EXPECT_TRUE(fine->qk_norm);
  // The config text reads back as the same shapes.
  auto parsed = ParseModelConfig(DemoConfigJson(*fine, DType::kBF16));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(HfTensorSpecs(*parsed).size(), HfTensorSpecs(*fine).size());

  for (Architecture a : {Architecture::kMixtral, Architecture::kQwen2Moe}) {
    auto bad = DemoModelConfig(DemoPreset::kBenchFinegrained, a);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr("qwen3moe"));
  }
  EXPECT_FALSE(ParseDemoPreset("huge").ok());
  EXPECT_FALSE(ParseDemoArch("llama").ok());
  EXPECT_EQ(*ParseDemoPreset("bench-finegrained"), DemoPreset::kBenchFinegrained);
  EXPECT_EQ(*ParseDemoArch("qwen2moe"), Architecture::kQwen2Moe);
}

TEST(DemoModelTest, RefusesFolderWithShardIndex) {
  TempDir dir;
  std::ofstream(dir.path() + "/model.safetensors.index.json") << "{}";
  DemoModelParams p;
  p.out_dir = dir.path();
  EXPECT_EQ(WriteDemoModel(p).status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- tokenizer ---------------------------------------------------------------------------------

void CheckTokenizer(const json& tok, int vocab_size) {
  const json& model = tok["model"];
  EXPECT_EQ(model["type"], "BPE");
  const json& vocab = model["vocab"];
  const json& merges = model["merges"];
  ASSERT_EQ(static_cast<int>(vocab.size()), vocab_size);
  ASSERT_EQ(static_cast<int>(merges.size()), vocab_size - 256 - 3);
  std::vector<std::string> by_id(vocab_size);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int id = it.value().get<int>();
    ASSERT_GE(id, 0);
    ASSERT_LT(id, vocab_size);
    ASSERT_TRUE(by_id[id].empty()) << "duplicate id " << id;
    by_id[id] = it.key();
  }
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string m = merges[r].get<std::string>();
    const size_t sp = m.find(' ');
    ASSERT_NE(sp, std::string::npos) << m;
    ASSERT_EQ(m.find(' ', sp + 1), std::string::npos) << m;
    const std::string a = m.substr(0, sp), b = m.substr(sp + 1);
    ASSERT_TRUE(vocab.contains(a)) << m;
    ASSERT_TRUE(vocab.contains(b)) << m;
    // Merge r creates token 256 + r, from tokens that exist before it.
    EXPECT_EQ(vocab[a + b].get<int>(), 256 + static_cast<int>(r)) << m;
    EXPECT_LT(vocab[a].get<int>(), 256 + static_cast<int>(r));
    EXPECT_LT(vocab[b].get<int>(), 256 + static_cast<int>(r));
  }
  const json& added = tok["added_tokens"];
  ASSERT_EQ(added.size(), 3u);
  EXPECT_EQ(added[0]["content"], kDemoEndOfText);
  EXPECT_EQ(added[0]["id"], vocab_size - 3);
  EXPECT_EQ(added[1]["content"], kDemoImStart);
  EXPECT_EQ(added[2]["content"], kDemoImEnd);
  EXPECT_EQ(added[2]["id"], vocab_size - 1);
  EXPECT_EQ(tok["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(tok["decoder"]["type"], "ByteLevel");
}

TEST(DemoTokenizerTest, TinyVocabularyIsValidAndMatchesGoldenBytes) {
  absl::StatusOr<std::string> text = DemoTokenizerJson(512);
  ASSERT_TRUE(text.ok());
  json tok = json::parse(*text);
  CheckTokenizer(tok, 512);
  // The 256 byte tokens are spelled and numbered exactly as in the golden tokenizer.json.
  json golden = json::parse(
      ReadFile(std::string(MOE_GOLDEN_DIR) + "/tiny-qwen3moe/hf-f32/tokenizer.json").value_or(""));
  int checked = 0;
  for (auto it = golden["model"]["vocab"].begin(); it != golden["model"]["vocab"].end(); ++it) {
    if (it.value().get<int>() < 256) {
      EXPECT_EQ(tok["model"]["vocab"][it.key()], it.value()) << it.key();
      ++checked;
    }
  }
  EXPECT_EQ(checked, 256);
  EXPECT_EQ(tok["model"]["vocab"]["\xc4\xa0"], 32);  // "Ġ" is the space byte
  // An English corpus learns " the" early.
  EXPECT_LT(tok["model"]["vocab"]["\xc4\xa0the"].get<int>(), 300);
  EXPECT_EQ(ByteLevelEncode(" the\n"), "\xc4\xa0the\xc4\x8a");
}

TEST(DemoTokenizerTest, BenchVocabularyIsValid) {
  absl::StatusOr<std::string> text = DemoTokenizerJson(32000);
  ASSERT_TRUE(text.ok());
  CheckTokenizer(json::parse(*text), 32000);
  EXPECT_EQ(*DemoTokenizerJson(32000), *text);  // deterministic
  EXPECT_FALSE(DemoTokenizerJson(100).ok());
}

TEST(DemoTokenizerTest, ConfigHasChatTemplateAndSpecials) {
  json cfg = json::parse(DemoTokenizerConfigJson(512, 512));
  EXPECT_EQ(cfg["add_bos_token"], false);
  EXPECT_EQ(cfg["eos_token"], kDemoEndOfText);
  EXPECT_EQ(cfg["model_max_length"], 512);
  EXPECT_THAT(cfg["chat_template"].get<std::string>(), HasSubstr("<|im_start|>"));
  EXPECT_THAT(cfg["chat_template"].get<std::string>(), HasSubstr("add_generation_prompt"));
  EXPECT_EQ(cfg["added_tokens_decoder"]["511"]["content"], kDemoImEnd);
}

}  // namespace
}  // namespace moe::model
