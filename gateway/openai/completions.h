// The OpenAI request bodies (POST /v1/completions, POST /v1/chat/completions) as parsed and
// validated from JSON, and the reply / stream chunk shapes built from generated output. Pure
// functions: no I/O, no gRPC.
#ifndef MOE_GATEWAY_OPENAI_COMPLETIONS_H_
#define MOE_GATEWAY_OPENAI_COMPLETIONS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace moe::gateway {

// Limits applied while parsing.
inline constexpr int kMaxLogprobs = 20;
inline constexpr int kMaxN = 16;
inline constexpr int kMaxStops = 16;
inline constexpr size_t kMaxStopBytes = 512;  // per stop string
inline constexpr int kMaxPrompts = 64;

// What both endpoints share: sampling, stopping, streaming, logprobs.
struct SamplingOptions {
  std::optional<int> max_tokens;  // nullopt: 16 (completions) or the rest of the context (chat)
  float temperature = 1.0f;       // [0, 2]; 0 = greedy
  float top_p = 1.0f;             // (0, 1]
  int top_k = 0;                  // 0 (or -1 in the request) = no limit
  std::optional<uint64_t> seed;
  float presence_penalty = 0.0f;   // [-2, 2]
  float frequency_penalty = 0.0f;  // [-2, 2]
  bool ignore_eos = false;
  int n = 1;                      // choices per prompt, [1, kMaxN]
  std::vector<std::string> stop;  // non-empty strings, at most kMaxStops
  std::vector<int32_t> stop_token_ids;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool stream = false;
  bool include_usage = false;   // stream_options.include_usage
  std::optional<int> logprobs;  // alternatives per token; nullopt: no logprobs
};

// One prompt: text (tokenized by the gateway) or token ids.
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

struct CompletionRequest {
  std::optional<std::string> model;  // absent: the served model
  std::vector<PromptInput> prompts;  // one or more (a list of strings or of id lists)
  SamplingOptions sampling;
  bool echo = false;
  bool add_special_tokens = true;
};

struct ChatRequest {
  std::optional<std::string> model;
  // The messages with text content as strings (parts joined), other fields as given; object
  // keys keep the request's order (templates that `tojson` them render what the client sent).
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;  // null if absent
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  SamplingOptions sampling;
  bool logprobs = false;  // chat's boolean; sampling.logprobs = top_logprobs when true
};

// JSON nested deeper than this is rejected before parsing (copying, printing or rendering a
// deeper value would recurse that deep).
inline constexpr int kMaxJsonDepth = 64;
// INVALID_ARGUMENT if `body`'s arrays and objects nest deeper than `max_depth` (a scan that
// skips strings; it does not validate the JSON).
absl::Status CheckJsonDepth(std::string_view body, int max_depth = kMaxJsonDepth);

// Parse and validate a request body. INVALID_ARGUMENT (with the field named through WithParam)
// for malformed JSON, wrong types, out-of-range values, unknown fields and features this
// gateway does not have (suffix, best_of > n, logit_bias, min_tokens, ...).
absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body);
absl::StatusOr<ChatRequest> ParseChatRequest(std::string_view body);

// One scored token: its id, log-probability and the top alternatives (best first).
struct ScoredToken {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};

// The text of one token as the logprobs fields show it.
using TokenText = std::function<std::string(int32_t)>;
// The bytes of one token (chat's `bytes` field).
using TokenBytes = std::function<std::string(int32_t)>;

// OpenAI legacy logprobs: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}.
// `entries` are the positions in order; nullopt is a position without a logprob (the first
// echoed prompt token): null in token_logprobs and top_logprobs, with `null_ids` giving its id.
// top_logprobs maps token text to logprob (the chosen token included, first occurrence of a
// text wins); text_offset counts Unicode code points from `offset_start`. `*offset_end` (if
// given) receives the offset after the last token.
struct LogprobEntry {
  int32_t id = 0;
  std::optional<ScoredToken> scored;
};
nlohmann::json LegacyLogprobs(const std::vector<LogprobEntry>& entries, const TokenText& text,
                              int64_t offset_start = 0, int64_t* offset_end = nullptr);

// Chat logprobs: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token",
// "logprob", "bytes"}]}], "refusal": null}, `top_n` alternatives each.
nlohmann::json ChatLogprobs(const std::vector<ScoredToken>& tokens, int top_n,
                            const TokenText& text, const TokenBytes& bytes);

// One finished choice.
struct ChoiceResult {
  int index = 0;
  std::string text;
  std::optional<nlohmann::json> logprobs;
  std::string finish_reason;
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
};
nlohmann::json UsageJson(const Usage& u);

// Non-streaming replies.
nlohmann::json CompletionReply(const std::string& id, int64_t created, const std::string& model,
                               const std::vector<ChoiceResult>& choices, const Usage& usage);
nlohmann::json ChatReply(const std::string& id, int64_t created, const std::string& model,
                         const std::vector<ChoiceResult>& choices, const Usage& usage);

// Streaming chunks (the JSON of one `data:` line). `finish_reason` empty: null.
nlohmann::json CompletionChunk(const std::string& id, int64_t created, const std::string& model,
                               int index, const std::string& text,
                               const std::optional<nlohmann::json>& logprobs,
                               const std::string& finish_reason);
// `delta` is {"role": "assistant", "content": ""} first, then {"content": ...} ({} for a
// finish without text).
nlohmann::json ChatChunk(const std::string& id, int64_t created, const std::string& model,
                         int index, const nlohmann::json& delta,
                         const std::optional<nlohmann::json>& logprobs,
                         const std::string& finish_reason);
// The final include_usage chunk: "choices": [] and the usage.
nlohmann::json UsageChunk(const std::string& id, int64_t created, const std::string& model,
                          bool chat, const Usage& usage);

// "data: <json>\n\n"
std::string SseEvent(const nlohmann::json& j);

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_OPENAI_COMPLETIONS_H_
