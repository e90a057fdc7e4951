// A Jinja interpreter for the subset of the language chat templates use (see README.md in this
// folder for the supported syntax, filters, tests and limits).
//
//   MOE_ASSIGN_OR_RETURN(auto tmpl, jinja::Template::Parse(config.chat_template));
//   MOE_ASSIGN_OR_RETURN(std::string prompt,
//                        tmpl.Render({{"messages", messages}, {"add_generation_prompt", true}}));
//
// Whitespace follows Hugging Face's rendering (trim_blocks and lstrip_blocks on, one trailing
// newline of the template dropped) and the output matches @huggingface/jinja, the JavaScript
// port transformers.js uses; tests/npm/jinja_render.mjs runs it for the conformance test.
#ifndef MOE_MODEL_JINJA_TEMPLATE_H_
#define MOE_MODEL_JINJA_TEMPLATE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "model/jinja/interpreter.h"
#include "nlohmann/json.hpp"

namespace moe::model::jinja {

struct Program;  // parsed template (template.cc)

// Copies share the parsed, immutable program; Render is const and safe to call from many
// threads at once.
class Template {
 public:
  // Parses Jinja source. INVALID_ARGUMENT naming line and column on a syntax error.
  static absl::StatusOr<Template> Parse(std::string_view source);

  // Renders with `context` (a JSON object of variables, e.g. {"messages": [...],
  // "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "tools": ...}).
  // raise_exception("msg") in the template -> INVALID_ARGUMENT whose message is exactly msg;
  // any other runtime error (unknown filter, bad types, a limit exceeded) -> INVALID_ARGUMENT
  // starting "template error at line L, column C: " or "template limit: ". Never crashes.
  // nlohmann::json sorts object keys, so `tojson` of a mapping in the context prints its keys
  // sorted; pass an nlohmann::ordered_json to keep the order the client sent.
  absl::StatusOr<std::string> Render(const nlohmann::json& context) const;
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context) const;

  // Same, with explicit limits instead of RenderLimits{}.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context,
                                     const RenderLimits& limits) const;

 private:
  explicit Template(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
  absl::StatusOr<std::string> RenderValue(const Value& context, const RenderLimits& limits) const;

  std::shared_ptr<const Program> program_;
};

// Largest template source Parse accepts.
inline constexpr size_t kMaxTemplateBytes = size_t{1} << 20;

}  // namespace moe::model::jinja

#endif  // MOE_MODEL_JINJA_TEMPLATE_H_
