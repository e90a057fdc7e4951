// Golden check: the tokenizer of each golden model folder reproduces the prompt ids, the
// completion texts and the top-5 token bytes that llama.cpp produced (see golden/README.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/tokenizer/stream_decoder.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_config.h"
#include "model/tokenizer/tokenizer_test_util.h"

namespace moe::model {
namespace {

using nlohmann::json;

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

std::string BytesOf(const json& list) {
  std::string bytes;
  for (const json& b : list) bytes.push_back(static_cast<char>(b.get<int>()));
  return bytes;
}

class GoldenTokenizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTokenizerTest, MatchesGoldenIdsAndTexts) {
  const std::string dir = GetParam();
  auto tokenizer = Tokenizer::FromFile(dir + "/tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const Tokenizer& tok = **tokenizer;
  auto config = LoadTokenizerConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  auto generation = LoadGenerationConfig(dir);
  ASSERT_TRUE(generation.ok()) << generation.status();
  EXPECT_EQ(generation->eos_token_ids, std::vector<int32_t>{509});
  EXPECT_EQ(generation->bos_token_id, 510);
  EXPECT_EQ(tok.TokenToId(config->eos_token.value_or("")), 509);
  EXPECT_EQ(tok.vocab_size(), 512);

  const bool is_mixtral = dir.find("tiny-mixtral") != std::string::npos;
  const std::string model_dir = std::filesystem::path(dir).parent_path().string();
  for (const char* expected_file : {"expected-f32.json", "expected-bf16.json"}) {
    const json expected = ReadJson(model_dir + "/" + expected_file);
    ASSERT_TRUE(expected.is_object()) << expected_file;
    ASSERT_EQ(expected.at("cases").size(), 5u);
    for (const json& c : expected.at("cases")) {
      const std::string prompt = c.at("prompt").get<std::string>();
      const auto prompt_ids = c.at("prompt_ids").get<std::vector<int32_t>>();
      SCOPED_TRACE(std::string(expected_file) + ": " + prompt);
      EXPECT_EQ(tok.Encode(prompt), prompt_ids);
      EXPECT_EQ(EncodeWithConfig(tok, *config, prompt), prompt_ids);
      EXPECT_EQ(prompt_ids.front() == 510, is_mixtral);

      const auto completion_ids = c.at("completion_ids").get<std::vector<int32_t>>();
      const std::string completion_text = c.at("completion_text").get<std::string>();
      EXPECT_EQ(tok.Decode(completion_ids), completion_text);
      StreamDecoder stream(&tok);
      std::string streamed;
      for (int32_t id : completion_ids) streamed += stream.Step(id);
      streamed += stream.Flush();
      EXPECT_EQ(streamed, completion_text);

      for (const json& step : c.at("steps")) {
        for (const json& top : step.at("top5")) {
          const int32_t id = top.at("id").get<int32_t>();
          EXPECT_EQ(tok.TokenBytes(id), BytesOf(top.at("bytes"))) << "token " << id;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllGoldenModels, GoldenTokenizerTest,
                         ::testing::ValuesIn(testing::GoldenModelDirs()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name =
                               std::filesystem::path(info.param).parent_path().filename().string() +
                               "_" + std::filesystem::path(info.param).filename().string();
                           for (char& ch : name) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace moe::model
