#include "gateway/openai/completions.h"

#include <gtest/gtest.h>

#include "gateway/openai/errors.h"

namespace moe::gateway {
namespace {

using json = nlohmann::json;

// Expects a 400 naming `param` (nullopt: no param).
void ExpectBad(const std::string& body, std::optional<std::string> param) {
  absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(body);
  ASSERT_FALSE(r.ok()) << body;
  ApiError e = ErrorFromStatus(r.status());
  EXPECT_EQ(e.http_status, 400) << body;
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.param, param) << body << ": " << e.message;
}

TEST(ParseCompletionRequestTest, Defaults) {
  auto r = ParseCompletionRequest(R"({"prompt": "hi"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt_text, "hi");
  EXPECT_TRUE(r->prompt_ids.empty());
  EXPECT_FALSE(r->model.has_value());
  EXPECT_EQ(r->max_tokens, 16);
  EXPECT_FLOAT_EQ(r->temperature, 1.0f);
  EXPECT_FLOAT_EQ(r->top_p, 1.0f);
  EXPECT_EQ(r->top_k, 0);
  EXPECT_FALSE(r->seed.has_value());
  EXPECT_FALSE(r->logprobs.has_value());
  EXPECT_FALSE(r->echo);
}

TEST(ParseCompletionRequestTest, AllFields) {
  auto r = ParseCompletionRequest(
      R"({"model": "m", "prompt": [1, 2, 3], "max_tokens": 0, "temperature": 0, "top_p": 0.5,
          "top_k": -1, "seed": 7, "logprobs": 5, "echo": true, "n": 1, "ignore_eos": true,
          "stop": null, "user": "u", "unknown_field": {"x": 1}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "m");
  EXPECT_EQ(r->prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(r->prompt_text.has_value());
  EXPECT_EQ(r->max_tokens, 0);
  EXPECT_EQ(r->temperature, 0.0f);
  EXPECT_FLOAT_EQ(r->top_p, 0.5f);
  EXPECT_EQ(r->top_k, 0);
  EXPECT_EQ(r->seed, 7u);
  EXPECT_EQ(r->logprobs, 5);
  EXPECT_TRUE(r->echo);
  EXPECT_TRUE(r->ignore_eos);
}

TEST(ParseCompletionRequestTest, SingleStringInAList) {
  auto r = ParseCompletionRequest(R"({"prompt": ["hello"], "max_tokens": 2.0})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt_text, "hello");
  EXPECT_EQ(r->max_tokens, 2);
}

TEST(ParseCompletionRequestTest, MalformedBodies) {
  ExpectBad("", std::nullopt);
  ExpectBad("{", std::nullopt);
  ExpectBad(R"({"prompt": "x",})", std::nullopt);
  ExpectBad("[1, 2]", std::nullopt);
  ExpectBad("\"prompt\"", std::nullopt);
  ExpectBad("null", std::nullopt);
}

TEST(ParseCompletionRequestTest, BadFields) {
  ExpectBad(R"({})", "prompt");
  ExpectBad(R"({"prompt": null})", "prompt");
  ExpectBad(R"({"prompt": 5})", "prompt");
  ExpectBad(R"({"prompt": []})", "prompt");
  ExpectBad(R"({"prompt": [1, -2]})", "prompt");
  ExpectBad(R"({"prompt": [1, 2.5]})", "prompt");
  ExpectBad(R"({"prompt": [1, 99999999999]})", "prompt");
  ExpectBad(R"({"prompt": ["a", "b"]})", "prompt");
  ExpectBad(R"({"prompt": [[1], [2]]})", "prompt");
  ExpectBad(R"({"prompt": "x", "model": 3})", "model");
  ExpectBad(R"({"prompt": "x", "max_tokens": -1})", "max_tokens");
  ExpectBad(R"({"prompt": "x", "max_tokens": "16"})", "max_tokens");
  ExpectBad(R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens");
  ExpectBad(R"({"prompt": "x", "max_tokens": 1e300})", "max_tokens");
  ExpectBad(R"({"prompt": "x", "max_tokens": 18446744073709551615})", "max_tokens");
  ExpectBad(R"({"prompt": "x", "max_tokens": 0})", "max_tokens");
  ExpectBad(R"({"prompt": "x", "temperature": -0.1})", "temperature");
  ExpectBad(R"({"prompt": "x", "temperature": 2.5})", "temperature");
  ExpectBad(R"({"prompt": "x", "temperature": "hot"})", "temperature");
  ExpectBad(R"({"prompt": "x", "top_p": 0})", "top_p");
  ExpectBad(R"({"prompt": "x", "top_p": 1.01})", "top_p");
  ExpectBad(R"({"prompt": "x", "top_k": -2})", "top_k");
  ExpectBad(R"({"prompt": "x", "seed": "1"})", "seed");
  ExpectBad(R"({"prompt": "x", "logprobs": 21})", "logprobs");
  ExpectBad(R"({"prompt": "x", "logprobs": -1})", "logprobs");
  ExpectBad(R"({"prompt": "x", "logprobs": true})", "logprobs");
  ExpectBad(R"({"prompt": "x", "echo": 1})", "echo");
  ExpectBad(R"({"prompt": "x", "ignore_eos": "yes"})", "ignore_eos");
  ExpectBad(R"({"prompt": "x", "n": 2})", "n");
  ExpectBad(R"({"prompt": "x", "n": 0})", "n");
  ExpectBad(R"({"prompt": "x", "best_of": 3})", "best_of");
  ExpectBad(R"({"prompt": "x", "stream": true})", "stream");
  ExpectBad(R"({"prompt": "x", "stream": "no"})", "stream");
  ExpectBad(R"({"prompt": "x", "stop": ["\n"]})", "stop");
  ExpectBad(R"({"prompt": "x", "stop": 3})", "stop");
  ExpectBad(R"({"prompt": "x", "presence_penalty": 0.5})", "presence_penalty");
  ExpectBad(R"({"prompt": "x", "frequency_penalty": 3})", "frequency_penalty");
}

std::string FakeText(int32_t id) { return "t" + std::to_string(id); }

TEST(LegacyLogprobsTest, EchoedPromptStartsWithNull) {
  std::vector<LogprobEntry> entries(3);
  entries[0].id = 5;
  entries[1].id = 6;
  entries[1].scored = ScoredToken{6, -0.5f, {{6, -0.5f}, {7, -1.5f}}};
  entries[2].id = 12;
  // The chosen token is not among the top: it is added; a duplicate text keeps the first.
  entries[2].scored = ScoredToken{12, -3.0f, {{8, -0.25f}, {8, -0.75f}}};
  json j = LegacyLogprobs(entries, FakeText);
  EXPECT_EQ(j["tokens"], json({"t5", "t6", "t12"}));
  EXPECT_TRUE(j["token_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(j["token_logprobs"][1].get<float>(), -0.5f);
  EXPECT_FLOAT_EQ(j["token_logprobs"][2].get<float>(), -3.0f);
  EXPECT_TRUE(j["top_logprobs"][0].is_null());
  EXPECT_EQ(j["top_logprobs"][1].size(), 2u);
  EXPECT_FLOAT_EQ(j["top_logprobs"][1]["t7"].get<float>(), -1.5f);
  EXPECT_EQ(j["top_logprobs"][2].size(), 2u);
  EXPECT_FLOAT_EQ(j["top_logprobs"][2]["t8"].get<float>(), -0.25f);
  EXPECT_FLOAT_EQ(j["top_logprobs"][2]["t12"].get<float>(), -3.0f);
  EXPECT_EQ(j["text_offset"], json({0, 2, 4}));
}

TEST(LegacyLogprobsTest, TextOffsetCountsCodePoints) {
  std::vector<LogprobEntry> entries(3);
  for (int i = 0; i < 3; ++i) {
    entries[i].id = i;
    entries[i].scored = ScoredToken{i, -1.0f, {}};
  }
  auto text = [](int32_t id) { return id == 0 ? std::string("h\xc3\xa9") : std::string("x"); };
  json j = LegacyLogprobs(entries, text, 10);
  EXPECT_EQ(j["text_offset"], json({10, 12, 13}));
  EXPECT_EQ(j["top_logprobs"][0].size(), 1u);  // only the chosen token
}

TEST(CompletionReplyTest, OpenAiShape) {
  CompletionReplyParts p;
  p.id = "cmpl-1";
  p.created = 1700000000;
  p.model = "tiny";
  p.text = "abc";
  p.finish_reason = "length";
  p.prompt_tokens = 4;
  p.completion_tokens = 3;
  json j = CompletionReply(p);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "tiny");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"], json({{"prompt_tokens", 4}, {"completion_tokens", 3},
                              {"total_tokens", 7}}));
}

}  // namespace
}  // namespace moe::gateway
