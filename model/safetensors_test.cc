#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "common/file.h"
#include "model/safetensors_writer.h"

namespace moe::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "moe_st_XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TensorData RawTensor(std::string name, DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  TensorData t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  size_t n = DTypeSize(dtype);
  for (int64_t d : t.shape) n *= static_cast<size_t>(d);
  t.bytes.resize(n);
  std::mt19937 rng(seed);
  for (auto& b : t.bytes) b = static_cast<uint8_t>(rng());
  return t;
}

TEST(SafetensorsTest, RoundTripAllDTypes) {
  TempDir dir;
  std::vector<TensorData> tensors = {
      RawTensor("f32", DType::kF32, {3, 5}, 1),      RawTensor("f16", DType::kF16, {7}, 2),
      RawTensor("bf16", DType::kBF16, {2, 3, 4}, 3), RawTensor("i32", DType::kI32, {4, 1}, 4),
      RawTensor("i64", DType::kI64, {3}, 5),         RawTensor("u8", DType::kU8, {13}, 6),
      RawTensor("scalar", DType::kF32, {}, 7),       RawTensor("empty", DType::kBF16, {0, 5}, 8),
  };
  const std::string path = dir.path() + "/x.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());

  // Header padded with spaces so the data section starts at a multiple of 8.
  std::string bytes = ReadFile(path).value_or("");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);
  EXPECT_EQ(bytes.substr(8, 15), "{\"__metadata__\"");

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ((*f)->names().size(), tensors.size());
  for (const TensorData& t : tensors) {
    const TensorView* v = (*f)->Find(t.name);
    ASSERT_NE(v, nullptr) << t.name;
    EXPECT_EQ(v->dtype, t.dtype) << t.name;
    EXPECT_EQ(v->shape, t.shape) << t.name;
    ASSERT_EQ(v->nbytes, t.bytes.size()) << t.name;
    if (v->nbytes > 0) {
      EXPECT_EQ(std::memcmp(v->data, t.bytes.data(), v->nbytes), 0) << t.name;
    }
  }
  EXPECT_EQ((*f)->Find("scalar")->numel(), 1);
  EXPECT_EQ((*f)->Find("empty")->numel(), 0);
  EXPECT_EQ((*f)->Find("missing"), nullptr);
  EXPECT_EQ((*f)->Find("bf16")->DebugString(), "BF16[2, 3, 4]");
}

TEST(SafetensorsTest, WriterIsDeterministic) {
  TempDir dir;
  std::vector<TensorData> tensors = {RawTensor("b", DType::kBF16, {5, 3}, 1),
                                     RawTensor("a", DType::kF32, {2}, 2)};
  ASSERT_TRUE(WriteSafetensors(dir.path() + "/1.safetensors", tensors).ok());
  ASSERT_TRUE(WriteSafetensors(dir.path() + "/2.safetensors", tensors).ok());
  EXPECT_EQ(ReadFile(dir.path() + "/1.safetensors").value_or(""),
            ReadFile(dir.path() + "/2.safetensors").value_or(""));
}

TEST(SafetensorsTest, StreamingWriterChecksItsInputs) {
  TempDir dir;
  SafetensorsWriter w;
  ASSERT_TRUE(w.Add("a", DType::kF32, {2}).ok());
  EXPECT_FALSE(w.Add("a", DType::kF32, {2}).ok());
  EXPECT_FALSE(w.Add("__metadata__", DType::kF32, {2}).ok());
  EXPECT_FALSE(w.Add("neg", DType::kF32, {-1}).ok());
  ASSERT_TRUE(w.Add("b", DType::kU8, {3}).ok());
  ASSERT_TRUE(w.Open(dir.path() + "/s.safetensors").ok());
  float a[2] = {1.5f, -2.0f};
  EXPECT_FALSE(w.Write("a", a, 4).ok());    // wrong size
  EXPECT_FALSE(w.Write("zzz", a, 8).ok());  // undeclared
  ASSERT_TRUE(w.Write("a", a, 8).ok());
  EXPECT_FALSE(w.Write("a", a, 8).ok());  // twice
  absl::Status s = w.Close();             // "b" never written
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"b\""));
}

TEST(SafetensorsTest, ToF32WidensAndChecksShape) {
  TempDir dir;
  std::vector<float> values = {1.0f, -2.5f, 0.15625f, 3.0e-3f, 65504.0f, -0.0f};
  std::vector<TensorData> tensors = {
      MakeTensorData("f32", DType::kF32, {2, 3}, values),
      MakeTensorData("bf16", DType::kBF16, {2, 3}, values),
      MakeTensorData("f16", DType::kF16, {2, 3}, values),
      RawTensor("i32", DType::kI32, {2, 3}, 1),
  };
  const std::string path = dir.path() + "/x.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok());
  auto f32 = ToF32(*(*f)->Find("f32"), {2, 3});
  ASSERT_TRUE(f32.ok());
  EXPECT_EQ(*f32, values);
  auto bf16 = ToF32(*(*f)->Find("bf16"), {2, 3});
  ASSERT_TRUE(bf16.ok());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ((*bf16)[i], Bf16ToF32(F32ToBf16(values[i]))) << i;
  }
  EXPECT_EQ((*bf16)[1], -2.5f);
  auto f16 = ToF32(*(*f)->Find("f16"));
  ASSERT_TRUE(f16.ok());
  EXPECT_EQ((*f16)[4], 65504.0f);
  EXPECT_EQ((*f16)[2], 0.15625f);

  auto bad = ToF32(*(*f)->Find("f32"), {3, 2});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("f32"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("[2, 3]"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("[3, 2]"));
  EXPECT_FALSE(ToF32(*(*f)->Find("i32")).ok());

  std::vector<float> out(5);
  EXPECT_FALSE(CopyToF32(*(*f)->Find("f32"), absl::MakeSpan(out)).ok());
}

TEST(SafetensorsTest, ReadsGoldenModel) {
  const std::string dir = std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-bf16";
  auto store = WeightStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto emb = (*store)->Get("model.embed_tokens.weight");
  ASSERT_TRUE(emb.ok());
  EXPECT_EQ(emb->dtype, DType::kBF16);
  EXPECT_THAT(emb->shape, ElementsAre(512, 64));
  // 903,744 parameters in BF16.
  EXPECT_EQ((*store)->TotalBytes(), 903744u * 2);

  auto f32_store = WeightStore::Open(std::string(MOE_GOLDEN_DIR) + "/tiny-mixtral/hf-f32");
  ASSERT_TRUE(f32_store.ok());
  auto a = ToF32(*emb, {512, 64});
  auto b = ToF32(*(*f32_store)->Get("model.embed_tokens.weight"), {512, 64});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);  // the F32 file is the exact widening of the BF16 file
}

// Writes a 3-shard model: shard 1 embeddings, shard 2 layer 0, shard 3 layer 1 experts.
void WriteShardedModel(const std::string& dir) {
  auto shard = [&](int i, std::vector<TensorData> tensors) -> std::string {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05d-of-00003.safetensors", i);
    EXPECT_TRUE(WriteSafetensors(dir + "/" + name, tensors).ok());
    return std::string(name);
  };
  std::string s1 = shard(1, {RawTensor("model.embed_tokens.weight", DType::kBF16, {16, 4}, 1)});
  std::string s2 =
      shard(2, {RawTensor("model.layers.0.self_attn.q_proj.weight", DType::kBF16, {4, 4}, 2),
                RawTensor("model.layers.0.mlp.experts.0.up_proj.weight", DType::kBF16, {8, 4}, 3)});
  std::string s3 =
      shard(3, {RawTensor("model.layers.1.mlp.experts.0.up_proj.weight", DType::kBF16, {8, 4}, 4),
                RawTensor("model.layers.1.mlp.experts.1.up_proj.weight", DType::kBF16, {8, 4}, 5)});
  std::ofstream idx(dir + "/model.safetensors.index.json");
  idx << R"({"metadata": {"total_size": 352}, "weight_map": {
    "model.embed_tokens.weight": ")"
      << s1 << R"(",
    "model.layers.0.self_attn.q_proj.weight": ")"
      << s2 << R"(",
    "model.layers.0.mlp.experts.0.up_proj.weight": ")"
      << s2 << R"(",
    "model.layers.1.mlp.experts.0.up_proj.weight": ")"
      << s3 << R"(",
    "model.layers.1.mlp.experts.1.up_proj.weight": ")"
      << s3 << R"("}})";
}

TEST(WeightStoreTest, ShardedFolder) {
  TempDir dir;
  WriteShardedModel(dir.path());
  auto store = WeightStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Names().size(), 5u);
  EXPECT_EQ((*store)->OpenedFiles().size(), 3u);
  EXPECT_EQ((*store)->TotalBytes(), (16 * 4 + 4 * 4 + 8 * 4 * 3) * 2u);
  auto t = (*store)->Get("model.layers.1.mlp.experts.1.up_proj.weight");
  ASSERT_TRUE(t.ok());
  TensorData expected = RawTensor("x", DType::kBF16, {8, 4}, 5);
  ASSERT_EQ(t->nbytes, expected.bytes.size());
  EXPECT_EQ(std::memcmp(t->data, expected.bytes.data(), t->nbytes), 0);

  auto missing = (*store)->Get("lm_head.weight");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("lm_head.weight"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr(dir.path()));
}

TEST(WeightStoreTest, FilterOpensOnlyNeededShards) {
  TempDir dir;
  WriteShardedModel(dir.path());
  auto store = WeightStore::Open(dir.path(), [](std::string_view n) {
    return n.find("layers.1.mlp.experts.") != std::string_view::npos;
  });
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT((*store)->OpenedFiles(),
              ElementsAre(dir.path() + "/model-00003-of-00003.safetensors"));
  EXPECT_THAT((*store)->Names(), ElementsAre("model.layers.1.mlp.experts.0.up_proj.weight",
                                             "model.layers.1.mlp.experts.1.up_proj.weight"));
  EXPECT_FALSE((*store)->Has("model.embed_tokens.weight"));

  // Experts of layer 0 live in shard 2 beside attention: shard 2 opens, but only experts show.
  auto experts = WeightStore::Open(
      dir.path(), [](std::string_view n) { return n.find(".experts.") != std::string_view::npos; });
  ASSERT_TRUE(experts.ok());
  EXPECT_EQ((*experts)->OpenedFiles().size(), 2u);
  EXPECT_FALSE((*experts)->Has("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE((*experts)->Has("model.layers.0.mlp.experts.0.up_proj.weight"));

  // A corrupt shard nobody asks for is never opened.
  std::ofstream(dir.path() + "/model-00001-of-00003.safetensors", std::ios::trunc) << "garbage";
  auto again = WeightStore::Open(
      dir.path(), [](std::string_view n) { return n.find("layers.1.") != std::string_view::npos; });
  EXPECT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(WeightStore::Open(dir.path()).ok());
}

TEST(WeightStoreTest, BadIndexAndMissingFiles) {
  TempDir dir;
  auto none = WeightStore::Open(dir.path());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);

  WriteShardedModel(dir.path());
  const std::string idx = dir.path() + "/model.safetensors.index.json";
  auto expect_invalid = [&](const std::string& text, const std::string& needle) {
    std::ofstream(idx, std::ios::trunc) << text;
    auto s = WeightStore::Open(dir.path());
    EXPECT_FALSE(s.ok()) << text;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(needle)) << text;
  };
  expect_invalid("not json", "index.json");
  expect_invalid("[1]", "index.json");
  expect_invalid(R"({"weight_map": 3})", "weight_map");
  expect_invalid(R"({"weight_map": {"a": 3}})", "\"a\"");
  expect_invalid(R"({"weight_map": {"a": "../../etc/passwd"}})", "outside");
  expect_invalid(R"({"weight_map": {"nope": "model-00001-of-00003.safetensors"}})", "nope");
  expect_invalid(R"({"weight_map": {"x": "model-00009-of-00009.safetensors"}})",
                 "model-00009-of-00009");
}

}  // namespace
}  // namespace moe::model
