#include "model/jinja/chat_prompt.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace moe::model::jinja {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(MOE_SOURCE_DIR) + "/model/jinja/testdata/" + name, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TokenizerConfig Config(const std::string& template_file, std::optional<std::string> bos,
                       std::optional<std::string> eos) {
  TokenizerConfig cfg;
  cfg.chat_template = ReadTestdata(template_file);
  cfg.chat_templates.push_back({"default", cfg.chat_template});
  cfg.bos_token = std::move(bos);
  cfg.eos_token = std::move(eos);
  return cfg;
}

TEST(ChatPromptTest, RendersTheDefaultTemplateWithSpecialTokens) {
  const TokenizerConfig cfg = Config("mixtral.jinja", "<s>", "</s>");
  const json messages = json::parse(R"([
      {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}])");
  auto prompt = RenderChatPrompt(cfg, messages, true, json());
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt, "<s> [INST] Be brief.\n\nHi [/INST] Hello.</s> [INST] Bye [/INST]");
}

TEST(ChatPromptTest, AddGenerationPromptAndExtraContext) {
  const TokenizerConfig cfg = Config("qwen3_moe.jinja", std::nullopt, "<|im_end|>");
  const ordered_json messages = ordered_json::parse(R"([{"role": "user", "content": "Hi"}])");
  auto with = RenderChatPrompt(cfg, messages, true, ordered_json::object());
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_EQ(*with, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto without = RenderChatPrompt(cfg, messages, false, ordered_json());
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(*without, "<|im_start|>user\nHi<|im_end|>\n");
  auto no_think = RenderChatPrompt(cfg, messages, true, ordered_json{{"enable_thinking", false}});
  ASSERT_TRUE(no_think.ok());
  EXPECT_EQ(*no_think,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Tools keep the key order the client sent (ordered_json).
  const ordered_json tools = ordered_json::parse(
      R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])");
  auto with_tools = RenderChatPrompt(cfg, messages, true, ordered_json{{"tools", tools}});
  ASSERT_TRUE(with_tools.ok());
  EXPECT_NE(
      with_tools->find("\n{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": "
                       "{\"type\": \"object\"}}}\n</tools>"),
      std::string::npos)
      << *with_tools;
}

TEST(ChatPromptTest, Errors) {
  TokenizerConfig none;
  auto r = RenderChatPrompt(none, json::array(), true, json());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "model has no chat template");

  const TokenizerConfig cfg = Config("mixtral.jinja", "<s>", "</s>");
  r = RenderChatPrompt(cfg, json::parse(R"([{"role": "assistant", "content": "x"}])"), true,
                       json());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "After the optional system message, conversation roles must alternate "
            "user/assistant/user/assistant/...");
  r = RenderChatPrompt(cfg, json::array(), true, json::array());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  TokenizerConfig broken;
  broken.chat_template = "{% if %}";
  r = RenderChatPrompt(broken, json::array(), true, json());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moe::model::jinja
