#include "model/tokenizer/tokenizer_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace moe::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A fresh temporary directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "moe_tokcfg_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ + "/" + name) << text;
  }

 private:
  std::string path_;
};

TEST(TokenizerConfigTest, ParsesTokensAndFlags) {
  auto config = ParseTokenizerConfig(R"({
    "bos_token": {"content": "<s>", "lstrip": false, "__type": "AddedToken"},
    "eos_token": "</s>", "pad_token": null, "add_bos_token": true, "add_eos_token": false,
    "model_max_length": 32768, "clean_up_tokenization_spaces": true,
    "tokenizer_class": "LlamaTokenizer", "chat_template": "{{ messages }}"})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->bos_token, "<s>");
  EXPECT_EQ(config->eos_token, "</s>");
  EXPECT_FALSE(config->pad_token.has_value());
  EXPECT_FALSE(config->unk_token.has_value());
  EXPECT_EQ(config->add_bos_token, true);
  EXPECT_EQ(config->add_eos_token, false);
  EXPECT_EQ(config->model_max_length, 32768);
  EXPECT_TRUE(config->clean_up_tokenization_spaces);
  EXPECT_EQ(config->tokenizer_class, "LlamaTokenizer");
  EXPECT_EQ(config->chat_template, "{{ messages }}");
  ASSERT_EQ(config->chat_templates.size(), 1u);
  EXPECT_EQ(config->chat_templates[0].name, "default");
}

TEST(TokenizerConfigTest, ChatTemplateListKeepsAllAndPicksDefault) {
  auto config = ParseTokenizerConfig(R"({"chat_template": [
    {"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
    "model_max_length": 1e30})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->chat_template, "D");
  ASSERT_EQ(config->chat_templates.size(), 2u);
  EXPECT_EQ(config->chat_templates[0].name, "tool_use");
  EXPECT_EQ(config->chat_templates[0].source, "T");
  EXPECT_FALSE(config->model_max_length.has_value());  // HF's "unlimited" sentinel
  EXPECT_FALSE(config->add_bos_token.has_value());
}

TEST(TokenizerConfigTest, WrongTypesAreInvalidArgument) {
  EXPECT_EQ(ParseTokenizerConfig(R"({"add_bos_token": "yes"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenizerConfig(R"({"chat_template": [{"name": 1}]})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTokenizerConfig("[]").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseGenerationConfig(R"({"eos_token_id": "2"})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GenerationConfigTest, ParsesEosListAndSamplingDefaults) {
  auto config = ParseGenerationConfig(R"({"bos_token_id": 1, "eos_token_id": [2, 32000],
    "do_sample": true, "temperature": 0.6, "top_p": 0.9, "top_k": 20, "max_new_tokens": 256,
    "transformers_version": "4.40.0"})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->eos_token_ids, ElementsAre(2, 32000));
  EXPECT_EQ(config->bos_token_id, 1);
  EXPECT_FALSE(config->pad_token_id.has_value());
  EXPECT_EQ(config->do_sample, true);
  EXPECT_FLOAT_EQ(config->temperature.value_or(-1), 0.6f);
  EXPECT_FLOAT_EQ(config->top_p.value_or(-1), 0.9f);
  EXPECT_EQ(config->top_k, 20);
  EXPECT_EQ(config->max_new_tokens, 256);
  EXPECT_FALSE(config->repetition_penalty.has_value());

  auto single = ParseGenerationConfig(R"({"eos_token_id": 7})");
  ASSERT_TRUE(single.ok());
  EXPECT_THAT(single->eos_token_ids, ElementsAre(7));
}

TEST(LoadConfigTest, MissingFilesGiveDefaults) {
  TempDir dir;
  auto tokenizer_config = LoadTokenizerConfig(dir.path());
  ASSERT_TRUE(tokenizer_config.ok()) << tokenizer_config.status();
  EXPECT_FALSE(tokenizer_config->bos_token.has_value());
  EXPECT_TRUE(tokenizer_config->chat_template.empty());
  auto generation_config = LoadGenerationConfig(dir.path());
  ASSERT_TRUE(generation_config.ok()) << generation_config.status();
  EXPECT_TRUE(generation_config->eos_token_ids.empty());
}

TEST(LoadConfigTest, MalformedFilesNameTheFile) {
  TempDir dir;
  dir.Write("tokenizer_config.json", "{\"bos_token\": ");
  dir.Write("generation_config.json", "not json");
  auto tokenizer_config = LoadTokenizerConfig(dir.path());
  EXPECT_EQ(tokenizer_config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tokenizer_config.status().message()), HasSubstr("tokenizer_config.json"));
  auto generation_config = LoadGenerationConfig(dir.path());
  EXPECT_EQ(generation_config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(generation_config.status().message()),
              HasSubstr("generation_config.json"));
}

TEST(LoadConfigTest, ChatTemplateJinjaFileIsTheFallback) {
  TempDir dir;
  dir.Write("tokenizer_config.json", R"({"eos_token": "<|im_end|>"})");
  dir.Write("chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}");
  auto config = LoadTokenizerConfig(dir.path());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->chat_template, "{% for m in messages %}{{ m.content }}{% endfor %}");
  EXPECT_EQ(config->eos_token, "<|im_end|>");
}

TEST(CleanUpTokenizationSpacesTest, RemovesSpacesBeforePunctuation) {
  EXPECT_EQ(CleanUpTokenizationSpaces("Hello , world . I do n't know !"),
            "Hello, world. I don't know!");
}

}  // namespace
}  // namespace moe::model
