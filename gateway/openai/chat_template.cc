#include "gateway/openai/chat_template.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "gateway/openai/errors.h"

#ifdef MOE_HAVE_JINJA
#include "model/jinja/template.h"
#endif

namespace moe::gateway {

struct ChatRenderer::Impl {
#ifdef MOE_HAVE_JINJA
  std::optional<model::jinja::Template> tmpl;
#endif
};

ChatRenderer::ChatRenderer(const model::TokenizerConfig& config)
    : impl_(std::make_unique<Impl>()),
      bos_token_(config.bos_token.value_or("")),
      eos_token_(config.eos_token.value_or("")) {
  if (config.chat_template.empty()) {
    status_ = absl::InvalidArgumentError(
        "this model has no chat template (tokenizer_config.json has no 'chat_template'): use "
        "/v1/completions");
    return;
  }
#ifdef MOE_HAVE_JINJA
  absl::StatusOr<model::jinja::Template> t = model::jinja::Template::Parse(config.chat_template);
  if (!t.ok()) {
    status_ = absl::InvalidArgumentError(
        absl::StrCat("the model's chat template does not parse: ", t.status().message()));
    return;
  }
  impl_->tmpl.emplace(std::move(*t));
#else
  status_ = absl::InvalidArgumentError("this build has no chat template interpreter");
#endif
}

ChatRenderer::~ChatRenderer() = default;

absl::StatusOr<std::string> ChatRenderer::Render(const ChatRequest& request) const {
  if (!status_.ok()) return WithParam(status_, "messages");
#ifdef MOE_HAVE_JINJA
  nlohmann::ordered_json context = request.chat_template_kwargs;
  context["messages"] = request.messages;
  context["add_generation_prompt"] = request.add_generation_prompt;
  context["bos_token"] = bos_token_;
  context["eos_token"] = eos_token_;
  if (!request.tools.is_null()) context["tools"] = request.tools;
  absl::StatusOr<std::string> text = impl_->tmpl->Render(context);
  if (!text.ok()) {
    return InvalidParam("messages",
                        absl::StrCat("the chat template failed: ", text.status().message()));
  }
  if (request.continue_final_message) {
    // Cut what the template put after the final message's text, so generation continues it.
    const nlohmann::ordered_json& last = request.messages.back();
    if (last.contains("content") && last["content"].is_string()) {
      const std::string& c = last["content"].get_ref<const std::string&>();
      const size_t pos = c.empty() ? std::string::npos : text->rfind(c);
      if (pos != std::string::npos) text->resize(pos + c.size());
    }
  }
  return text;
#else
  return InvalidParam("messages", "this build has no chat template interpreter");
#endif
}

}  // namespace moe::gateway
