// Recursive-descent parser from tokens to a statement list. Grammar and operator precedence
// follow @huggingface/jinja (which follows Jinja): ternary < or < and < not < comparison/in <
// + - ~ < * / // % < ** < is-test < |filter < unary sign < call/member < primary.
#ifndef MOE_MODEL_JINJA_PARSER_H_
#define MOE_MODEL_JINJA_PARSER_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/jinja/ast.h"
#include "model/jinja/lexer.h"

namespace moe::model::jinja {

// Parses `tokens` (from Tokenize(source)). INVALID_ARGUMENT naming line and column (in
// `source`) on a syntax error, or when blocks nest deeper than `max_depth`.
absl::StatusOr<NodeList> Parse(const std::vector<Token>& tokens, std::string_view source,
                               int max_depth);

}  // namespace moe::model::jinja

#endif  // MOE_MODEL_JINJA_PARSER_H_
