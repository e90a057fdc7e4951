// POST /v1/completions: the request as parsed and validated from JSON, and the reply built from
// a finished generation (OpenAI's legacy completions shape). Pure functions: no I/O, no gRPC.
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

struct CompletionRequest {
  std::optional<std::string> model;        // absent: the served model
  std::optional<std::string> prompt_text;  // the prompt when given as a string
  std::vector<int32_t> prompt_ids;         // the prompt when given as token ids (non-empty)
  int max_tokens = 16;                     // >= 0; 0 only with echo
  float temperature = 1.0f;                // [0, 2]; 0 = greedy
  float top_p = 1.0f;                      // (0, 1]
  int top_k = 0;                           // 0 or -1 = no limit
  std::optional<uint64_t> seed;
  std::optional<int> logprobs;  // [0, kMaxLogprobs]: top alternatives per token
  bool echo = false;
  bool ignore_eos = false;
};

// Parses and validates a request body. INVALID_ARGUMENT (with the field named through
// WithParam) for malformed JSON, wrong types, out-of-range values and features this gateway
// does not have yet (n > 1, stream, stop, best_of > 1, suffix).
absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body);

// One scored token: its id, log-probability and the top alternatives (best first).
struct ScoredToken {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};

// What the attention worker returned for one request.
struct CompletionOutput {
  std::vector<ScoredToken> prompt_logprobs;  // for prompt tokens 1..n-1 (echo + logprobs)
  std::vector<ScoredToken> tokens;           // generated tokens
  std::string finish_reason;                 // "stop" or "length"
  int prompt_tokens = 0;
};

// The text of one token as the logprobs fields show it.
using TokenText = std::function<std::string(int32_t)>;

// OpenAI legacy logprobs: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}.
// `entries` are the positions in order; nullopt is a position without a logprob (the first
// echoed prompt token): null in token_logprobs and top_logprobs, with `null_ids` giving its id.
// top_logprobs maps token text to logprob (the chosen token included, first occurrence of a
// text wins); text_offset counts Unicode code points from `offset_start`.
struct LogprobEntry {
  int32_t id = 0;
  std::optional<ScoredToken> scored;
};
nlohmann::json LegacyLogprobs(const std::vector<LogprobEntry>& entries, const TokenText& text,
                              int64_t offset_start = 0);

// Everything the reply needs besides the request.
struct CompletionReplyParts {
  std::string id;       // "cmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
  std::string text;                      // echoed prompt (if echo) + completion text
  std::optional<nlohmann::json> logprobs;
  std::string finish_reason;
  int prompt_tokens = 0;
  int completion_tokens = 0;
};
nlohmann::json CompletionReply(const CompletionReplyParts& parts);

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_OPENAI_COMPLETIONS_H_
