#include "model/jinja/chat_prompt.h"

#include "absl/status/status.h"
#include "common/status.h"
#include "model/jinja/template.h"

namespace moe::model::jinja {
namespace {

template <typename Json>
absl::StatusOr<std::string> RenderImpl(const TokenizerConfig& cfg, const Json& messages,
                                       bool add_generation_prompt, const Json& extra_context) {
  if (cfg.chat_template.empty()) {
    return absl::FailedPreconditionError("model has no chat template");
  }
  if (!extra_context.is_null() && !extra_context.is_object()) {
    return absl::InvalidArgumentError("chat template context must be a JSON object");
  }
  MOE_ASSIGN_OR_RETURN(Template tmpl, Template::Parse(cfg.chat_template));
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  if (cfg.bos_token) context["bos_token"] = *cfg.bos_token;
  if (cfg.eos_token) context["eos_token"] = *cfg.eos_token;
  if (extra_context.is_object()) {
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it) {
      context[it.key()] = nlohmann::ordered_json(it.value());
    }
  }
  context["messages"] = nlohmann::ordered_json(messages);
  context["add_generation_prompt"] = add_generation_prompt;
  return tmpl.Render(context);
}

}  // namespace

absl::StatusOr<std::string> RenderChatPrompt(const TokenizerConfig& cfg,
                                             const nlohmann::json& messages,
                                             bool add_generation_prompt,
                                             const nlohmann::json& extra_context) {
  return RenderImpl(cfg, messages, add_generation_prompt, extra_context);
}

absl::StatusOr<std::string> RenderChatPrompt(const TokenizerConfig& cfg,
                                             const nlohmann::ordered_json& messages,
                                             bool add_generation_prompt,
                                             const nlohmann::ordered_json& extra_context) {
  return RenderImpl(cfg, messages, add_generation_prompt, extra_context);
}

}  // namespace moe::model::jinja
