// Renders a model's chat template for a chat request: the one call the gateway needs.
#ifndef MOE_MODEL_JINJA_CHAT_PROMPT_H_
#define MOE_MODEL_JINJA_CHAT_PROMPT_H_

#include <string>

#include "absl/status/statusor.h"
#include "model/tokenizer/tokenizer_config.h"
#include "nlohmann/json.hpp"

namespace moe::model::jinja {

// Renders `cfg.chat_template` (the template named "default", or the only one) with the context
//   bos_token, eos_token      from `cfg` (left undefined when the config has none),
//   every key of `extra_context` (a JSON object or null: e.g. "tools", "enable_thinking";
//                             it may override bos_token/eos_token, as transformers'
//                             apply_chat_template kwargs do),
//   messages                  = `messages` (the OpenAI request's messages array, as sent),
//   add_generation_prompt     = `add_generation_prompt`.
// Errors: FAILED_PRECONDITION "model has no chat template" when cfg has none (HTTP 400 for a
// chat request); INVALID_ARGUMENT for a template syntax error, a raise_exception in the
// template (the message is the template's, e.g. "Conversation roles must alternate ..."),
// or any other rendering error or limit. The template is parsed on every call (tens of
// microseconds for real templates); callers that render often may keep a Template instead.
// Pass nlohmann::ordered_json to keep the key order of tool schemas in `tojson` output
// (nlohmann::json sorts keys).
absl::StatusOr<std::string> RenderChatPrompt(const TokenizerConfig& cfg,
                                             const nlohmann::json& messages,
                                             bool add_generation_prompt,
                                             const nlohmann::json& extra_context);
absl::StatusOr<std::string> RenderChatPrompt(const TokenizerConfig& cfg,
                                             const nlohmann::ordered_json& messages,
                                             bool add_generation_prompt,
                                             const nlohmann::ordered_json& extra_context);

}  // namespace moe::model::jinja

#endif  // MOE_MODEL_JINJA_CHAT_PROMPT_H_
