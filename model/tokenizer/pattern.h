// Patterns of tokenizer.json ({"String": ...} or {"Regex": ...}) over UTF-8 text. Regexes are
// compiled with PCRE2 in UTF + UCP mode and JIT-compiled. Internal to moe_tokenizer.
#ifndef MOE_MODEL_TOKENIZER_PATTERN_H_
#define MOE_MODEL_TOKENIZER_PATTERN_H_

#include <cstddef>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::model::tokenizer_internal {

// A compiled pattern: a literal string or a regular expression. Immutable after creation and
// safe to use from many threads at once (match state is per call).
class Pattern {
 public:
  // Byte offsets [first, second) of one match.
  using Span = std::pair<size_t, size_t>;

  static std::unique_ptr<Pattern> Literal(std::string_view literal);
  // `regex` uses the Oniguruma syntax tokenizer.json files are written for; the PCRE2-compatible
  // subset is accepted as is and \uXXXX escapes are translated. INVALID_ARGUMENT if it does not
  // compile.
  static absl::StatusOr<std::unique_ptr<Pattern>> Regex(std::string_view regex);

  ~Pattern();
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  // Successive non-overlapping matches in `text` (valid UTF-8), left to right. Empty matches
  // are reported; the search then resumes one character later.
  std::vector<Span> FindAll(std::string_view text) const;

  // `text` with every match replaced by `replacement` (taken literally).
  std::string ReplaceAll(std::string_view text, std::string_view replacement) const;

 private:
  Pattern() = default;

  std::string literal_;
  void* code_ = nullptr;  // pcre2_code_8*, owned; null for a literal pattern
};

// Parses a tokenizer.json pattern object, {"String": "..."} or {"Regex": "..."}.
absl::StatusOr<std::unique_ptr<Pattern>> ParsePatternField(const nlohmann::json& pattern);

}  // namespace moe::model::tokenizer_internal

#endif  // MOE_MODEL_TOKENIZER_PATTERN_H_
