// Tokenizer for Jinja templates. Whitespace handling follows Hugging Face: one trailing newline
// of the template is dropped, and the template is rendered with trim_blocks and lstrip_blocks
// (the first newline after a block or comment tag is removed; spaces and tabs before a block or
// comment tag at the start of a line are removed), then `{%-`, `-%}`, `{{-`, `-}}`, `{#-`, `-#}`
// strip whitespace on their side. This is the textual preprocessing @huggingface/jinja applies.
// `{% generation %}` / `{% endgeneration %}` tags (a transformers extension) are removed.
#ifndef MOE_MODEL_JINJA_LEXER_H_
#define MOE_MODEL_JINJA_LEXER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::model::jinja {

enum class TokenType : uint8_t {
  kText,
  kNumber,
  kString,
  kIdentifier,
  kEquals,
  kOpenParen,
  kCloseParen,
  kOpenStatement,
  kCloseStatement,
  kOpenExpression,
  kCloseExpression,
  kOpenBracket,
  kCloseBracket,
  kOpenBrace,
  kCloseBrace,
  kComma,
  kDot,
  kColon,
  kPipe,
  kAdditive,        // + - ~
  kMultiplicative,  // * / // %
  kPower,           // **
  kComparison,      // < > <= >= == !=
  kUnary,           // a sign not followed by a number: -x
  kComment,
};

struct Token {
  TokenType type;
  std::string value;
  uint32_t offset;  // byte offset in the original template source
};

// Tokenizes `source`. INVALID_ARGUMENT naming line and column on a lexical error.
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source);

// "line L, column C" (1-based; columns count bytes) of byte `offset` in `source`.
std::string DescribePosition(std::string_view source, uint32_t offset);

}  // namespace moe::model::jinja

#endif  // MOE_MODEL_JINJA_LEXER_H_
