// The model's chat template (tokenizer_config.json "chat_template", rendered with our Jinja
// interpreter in model/jinja when this build has it) applied to a chat request.
#ifndef MOE_GATEWAY_OPENAI_CHAT_TEMPLATE_H_
#define MOE_GATEWAY_OPENAI_CHAT_TEMPLATE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gateway/openai/completions.h"
#include "model/tokenizer/tokenizer_config.h"

namespace moe::gateway {

class ChatRenderer {
 public:
  // Parses config.chat_template. A model without one (or a template that does not parse, or a
  // build without the interpreter) still gets a renderer; Render then fails with a clear
  // INVALID_ARGUMENT (400).
  explicit ChatRenderer(const model::TokenizerConfig& config);
  ~ChatRenderer();
  // The prompt text for `request`: messages, add_generation_prompt, bos_token, eos_token, tools
  // (if given) and chat_template_kwargs in the context. raise_exception in the template and
  // render errors: INVALID_ARGUMENT naming "messages".
  absl::StatusOr<std::string> Render(const ChatRequest& request) const;
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  absl::Status status_;
  std::string bos_token_;
  std::string eos_token_;
};

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_OPENAI_CHAT_TEMPLATE_H_
