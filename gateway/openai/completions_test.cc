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
  ASSERT_EQ(r->prompts.size(), 1u);
  EXPECT_EQ(r->prompts[0].text, "hi");
  EXPECT_TRUE(r->prompts[0].ids.empty());
  EXPECT_FALSE(r->model.has_value());
  EXPECT_EQ(r->sampling.max_tokens, 16);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 1.0f);
  EXPECT_EQ(r->sampling.top_k, 0);
  EXPECT_EQ(r->sampling.n, 1);
  EXPECT_FALSE(r->sampling.seed.has_value());
  EXPECT_FALSE(r->sampling.logprobs.has_value());
  EXPECT_FALSE(r->sampling.stream);
  EXPECT_TRUE(r->sampling.stop.empty());
  EXPECT_FALSE(r->echo);
}

TEST(ParseCompletionRequestTest, AllFields) {
  auto r = ParseCompletionRequest(
      R"({"model": "m", "prompt": [1, 2, 3], "max_tokens": 0, "temperature": 0, "top_p": 0.5,
          "top_k": -1, "seed": 7, "logprobs": 5, "echo": true, "n": 3, "ignore_eos": true,
          "stop": ["a", "", "bc"], "user": "u", "presence_penalty": 0.5,
          "frequency_penalty": -1, "stream": true, "stream_options": {"include_usage": true},
          "stop_token_ids": [4], "best_of": 3, "suffix": "", "logit_bias": {}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->prompts.size(), 1u);
  EXPECT_EQ(r->prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(r->prompts[0].text.has_value());
  const SamplingOptions& s = r->sampling;
  EXPECT_EQ(s.max_tokens, 0);
  EXPECT_EQ(s.temperature, 0.0f);
  EXPECT_FLOAT_EQ(s.top_p, 0.5f);
  EXPECT_EQ(s.top_k, 0);
  EXPECT_EQ(s.seed, 7u);
  EXPECT_EQ(s.logprobs, 5);
  EXPECT_EQ(s.n, 3);
  EXPECT_TRUE(r->echo);
  EXPECT_TRUE(s.ignore_eos);
  EXPECT_EQ(s.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_FLOAT_EQ(s.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -1.0f);
  EXPECT_TRUE(s.stream);
  EXPECT_TRUE(s.include_usage);
  EXPECT_EQ(s.stop_token_ids, (std::vector<int32_t>{4}));
}

TEST(ParseCompletionRequestTest, PromptShapes) {
  auto r = ParseCompletionRequest(R"({"prompt": ["hello"], "max_tokens": 2.0})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->prompts.size(), 1u);
  EXPECT_EQ(r->prompts[0].text, "hello");
  EXPECT_EQ(r->sampling.max_tokens, 2);
  r = ParseCompletionRequest(R"({"prompt": ["a", "b"], "stop": "x"})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->prompts.size(), 2u);
  EXPECT_EQ(r->prompts[1].text, "b");
  EXPECT_EQ(r->sampling.stop, (std::vector<std::string>{"x"}));
  r = ParseCompletionRequest(R"({"prompt": [[1, 2], [3]]})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->prompts.size(), 2u);
  EXPECT_EQ(r->prompts[0].ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(r->prompts[1].ids, (std::vector<int32_t>{3}));
}

TEST(ParseCompletionRequestTest, MalformedBodies) {
  ExpectBad("", std::nullopt);
  ExpectBad("{", std::nullopt);
  ExpectBad(R"({"prompt": "x",})", std::nullopt);
  ExpectBad("[1, 2]", std::nullopt);
  ExpectBad("\"prompt\"", std::nullopt);
  ExpectBad("null", std::nullopt);
}

TEST(CheckJsonDepthTest, CountsBracketsOutsideStrings) {
  EXPECT_TRUE(CheckJsonDepth(R"({"a": [[1]]})", 3).ok());
  EXPECT_FALSE(CheckJsonDepth(R"({"a": [[[1]]]})", 3).ok());
  EXPECT_TRUE(CheckJsonDepth(R"({"a": "[[[[\"[[[["})", 1).ok());
  const std::string deep =
      "{\"prompt\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  ExpectBad(deep, std::nullopt);
  EXPECT_FALSE(ParseChatRequest("{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"x\": " +
                                std::string(70, '[') + std::string(70, ']') + "}]}")
                   .ok());
}

TEST(ParseCompletionRequestTest, BadFields) {
  ExpectBad(R"({})", "prompt");
  ExpectBad(R"({"prompt": null})", "prompt");
  ExpectBad(R"({"prompt": 5})", "prompt");
  ExpectBad(R"({"prompt": []})", "prompt");
  ExpectBad(R"({"prompt": [1, -2]})", "prompt");
  ExpectBad(R"({"prompt": [1, 2.5]})", "prompt");
  ExpectBad(R"({"prompt": [1, 99999999999]})", "prompt");
  ExpectBad(R"({"prompt": ["a", 1]})", "prompt");
  ExpectBad(R"({"prompt": [[1], 2]})", "prompt");
  ExpectBad(R"({"prompt": [[1], []]})", "prompt");
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
  ExpectBad(R"({"prompt": "x", "n": 17})", "n");
  ExpectBad(R"({"prompt": "x", "n": 0})", "n");
  ExpectBad(R"({"prompt": "x", "best_of": 3})", "best_of");
  ExpectBad(R"({"prompt": "x", "stream": "no"})", "stream");
  ExpectBad(R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options");
  ExpectBad(R"({"prompt": "x", "stream": true, "stream_options": 1})", "stream_options");
  ExpectBad(R"({"prompt": "x", "stop": [1]})", "stop");
  ExpectBad(R"({"prompt": "x", "stop": 3})", "stop");
  ExpectBad(R"({"prompt": "x", "stop": ")" + std::string(513, 'a') + R"("})", "stop");
  ExpectBad(R"({"prompt": "x", "stop": ["a", ")" + std::string(513, 'a') + R"("]})", "stop");
  ExpectBad(R"({"prompt": "x", "frequency_penalty": 3})", "frequency_penalty");
  ExpectBad(R"({"prompt": "x", "presence_penalty": -2.5})", "presence_penalty");
  ExpectBad(R"({"prompt": "x", "suffix": "s"})", "suffix");
  ExpectBad(R"({"prompt": "x", "logit_bias": {"1": 5}})", "logit_bias");
  ExpectBad(R"({"prompt": "x", "unknown_field": 1})", "unknown_field");
  ExpectBad(R"({"prompt": "x", "user": 5})", "user");
}

void ExpectBadChat(const std::string& body, const std::string& param) {
  absl::StatusOr<ChatRequest> r = ParseChatRequest(body);
  ASSERT_FALSE(r.ok()) << body;
  ApiError e = ErrorFromStatus(r.status());
  EXPECT_EQ(e.http_status, 400) << body;
  EXPECT_EQ(e.param, param) << body << ": " << e.message;
}

TEST(ParseChatRequestTest, MessagesAndChatFields) {
  auto r = ParseChatRequest(R"({"messages": [{"role": "system", "content": "s"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
      {"role": "assistant", "content": null, "tool_calls": []}],
      "max_tokens": 5, "max_completion_tokens": 7, "logprobs": true, "top_logprobs": 3,
      "tools": [{"type": "function"}], "tool_choice": "auto"})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[1]["content"], "a\nb");
  EXPECT_TRUE(r->messages[2]["content"].is_null());
  EXPECT_EQ(r->sampling.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->sampling.logprobs, 3);
  EXPECT_TRUE(r->add_generation_prompt);
  EXPECT_EQ(r->tools.size(), 1u);
  r = ParseChatRequest(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->sampling.logprobs, 0);
  EXPECT_FALSE(r->sampling.max_tokens.has_value());
}

TEST(ParseChatRequestTest, BadMessages) {
  ExpectBadChat(R"({})", "messages");
  ExpectBadChat(R"({"messages": []})", "messages");
  ExpectBadChat(R"({"messages": "hi"})", "messages");
  ExpectBadChat(R"({"messages": [1]})", "messages");
  ExpectBadChat(R"({"messages": [{"content": "x"}]})", "messages");
  ExpectBadChat(R"({"messages": [{"role": "robot", "content": "x"}]})", "messages");
  ExpectBadChat(R"({"messages": [{"role": "user"}]})", "messages");
  ExpectBadChat(R"({"messages": [{"role": "user", "content": 5}]})", "messages");
  ExpectBadChat(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
                "messages");
  const std::string ok = R"("messages": [{"role": "user", "content": "x"}])";
  ExpectBadChat("{" + ok + R"(, "top_logprobs": 2})", "top_logprobs");
  ExpectBadChat("{" + ok + R"(, "logprobs": 2})", "logprobs");
  ExpectBadChat("{" + ok + R"(, "max_completion_tokens": 0})", "max_completion_tokens");
  ExpectBadChat("{" + ok + R"(, "tool_choice": "required"})", "tool_choice");
  ExpectBadChat("{" + ok + R"(, "response_format": {"type": "json_object"}})", "response_format");
  ExpectBadChat("{" + ok + R"(, "echo": true})", "echo");
  ExpectBadChat("{" + ok + R"(, "prompt": "x"})", "prompt");
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
  ChoiceResult c{0, "abc", std::nullopt, "length"};
  json j = CompletionReply("cmpl-1", 1700000000, "tiny", {c}, Usage{4, 3});
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "tiny");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"],
            json({{"prompt_tokens", 4}, {"completion_tokens", 3}, {"total_tokens", 7}}));
}

TEST(ChatReplyTest, OpenAiShapesIncludingChunks) {
  ChoiceResult c{1, "hey", std::nullopt, "stop"};
  json j = ChatReply("chatcmpl-1", 5, "tiny", {c}, Usage{2, 1});
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["index"], 1);
  EXPECT_EQ(j["choices"][0]["message"], json({{"role", "assistant"}, {"content", "hey"}}));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  json chunk = ChatChunk("chatcmpl-1", 5, "tiny", 0, json{{"content", "h"}}, std::nullopt, "");
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunk["choices"][0]["delta"]["content"], "h");
  json u = UsageChunk("chatcmpl-1", 5, "tiny", true, Usage{2, 1});
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 3);
  EXPECT_EQ(SseEvent(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  json cc = CompletionChunk("cmpl-1", 5, "tiny", 2, "x", std::nullopt, "length");
  EXPECT_EQ(cc["object"], "text_completion");
  EXPECT_EQ(cc["choices"][0]["index"], 2);
  EXPECT_EQ(cc["choices"][0]["finish_reason"], "length");
}

TEST(ChatLogprobsTest, ContentEntriesWithBytesAndTop) {
  std::vector<ScoredToken> t = {ScoredToken{3, -0.1f, {{3, -0.1f}, {4, -2.0f}}}};
  auto bytes = [](int32_t id) { return std::string(1, static_cast<char>('a' + id)); };
  json j = ChatLogprobs(t, 1, FakeText, bytes);
  ASSERT_EQ(j["content"].size(), 1u);
  EXPECT_EQ(j["content"][0]["token"], "t3");
  EXPECT_EQ(j["content"][0]["bytes"], json({100}));
  ASSERT_EQ(j["content"][0]["top_logprobs"].size(), 1u);
  EXPECT_EQ(j["content"][0]["top_logprobs"][0]["token"], "t3");
  EXPECT_TRUE(j["refusal"].is_null());
}

}  // namespace
}  // namespace moe::gateway

namespace moe::gateway {
namespace {

// Random mutations of valid bodies: the parsers never throw and fail only with
// INVALID_ARGUMENT.
TEST(ParseFuzzTest, MutatedBodiesNeverThrow) {
  const std::vector<std::string> seeds = {
      R"({"model": "m", "prompt": ["a", "b"], "max_tokens": 5, "temperature": 0.5, "n": 2,
          "stop": ["x", "y"], "stream": true, "stream_options": {"include_usage": true},
          "logprobs": 2, "echo": true, "seed": 3, "top_k": 4, "logit_bias": {}})",
      R"({"prompt": [[1, 2], [3]], "stop_token_ids": [1], "suffix": "", "best_of": 1})",
      R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content":
          [{"type": "text", "text": "t"}]}, {"role": "assistant", "content": null,
          "tool_calls": []}], "max_completion_tokens": 3, "logprobs": true, "top_logprobs": 2,
          "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto",
          "response_format": {"type": "text"}, "chat_template_kwargs": {"a": [1]}})"};
  const std::string alphabet = "{}[]\",:0123456789.-+eEtrufalsn\\ \xff\xc3";
  uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  int ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[next() % seeds.size()];
    const int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t pos = next() % s.size();
      switch (next() % 3) {
        case 0:
          s[pos] = alphabet[next() % alphabet.size()];
          break;
        case 1:
          s.insert(pos, 1, alphabet[next() % alphabet.size()]);
          break;
        default:
          s.erase(pos, 1 + next() % 8);
      }
    }
    absl::Status a, b;
    ASSERT_NO_THROW(a = ParseCompletionRequest(s).status()) << s;
    ASSERT_NO_THROW(b = ParseChatRequest(s).status()) << s;
    for (const absl::Status& st : {a, b}) {
      ASSERT_TRUE(st.ok() || st.code() == absl::StatusCode::kInvalidArgument) << st << " " << s;
      ok += st.ok();
    }
  }
  EXPECT_GT(ok, 0);  // some mutations stay valid
}

}  // namespace
}  // namespace moe::gateway
