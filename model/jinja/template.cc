#include "model/jinja/template.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/jinja/ast.h"
#include "model/jinja/lexer.h"
#include "model/jinja/parser.h"
#include "model/jinja/value.h"

namespace moe::model::jinja {

// Parser nesting limit: bounds recursion in the parser and in the evaluator (whose depth
// follows the tree's).
constexpr int kMaxParseDepth = 256;

struct Program {
  std::string source;
  NodeList body;
};

absl::StatusOr<Template> Template::Parse(std::string_view source) {
  if (source.size() > kMaxTemplateBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("template larger than ", kMaxTemplateBytes, " bytes"));
  }
  MOE_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  auto program = std::make_shared<Program>();
  program->source.assign(source);
  MOE_ASSIGN_OR_RETURN(program->body, jinja::Parse(tokens, program->source, kMaxParseDepth));
  return Template(std::move(program));
}

absl::StatusOr<std::string> Template::Render(const nlohmann::json& context) const {
  return RenderValue(Value::FromJson(context), RenderLimits{});
}

absl::StatusOr<std::string> Template::Render(const nlohmann::ordered_json& context) const {
  return RenderValue(Value::FromJson(context), RenderLimits{});
}

absl::StatusOr<std::string> Template::Render(const nlohmann::ordered_json& context,
                                             const RenderLimits& limits) const {
  return RenderValue(Value::FromJson(context), limits);
}

absl::StatusOr<std::string> Template::RenderValue(const Value& context,
                                                  const RenderLimits& limits) const {
  if (!context.is_object() && !context.is_none()) {
    return absl::InvalidArgumentError("template context must be a JSON object");
  }
  return internal::RenderProgram(program_->body, program_->source, context, limits);
}

}  // namespace moe::model::jinja
