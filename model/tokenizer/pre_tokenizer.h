// tokenizer.json "pre_tokenizer" section: splits normalized text into words for the model.
// Internal to moe_tokenizer.
#ifndef MOE_MODEL_TOKENIZER_PRE_TOKENIZER_H_
#define MOE_MODEL_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/tokenizer/pattern.h"

namespace moe::model::tokenizer_internal {

struct PreToken {
  std::string text;  // valid UTF-8
  // True if the piece begins at offset 0 of the text given to Encode (Metaspace's
  // prepend_scheme "first" only prefixes that piece).
  bool at_original_start = false;
};

// HF SplitDelimiterBehavior: what happens to the pattern matches when splitting.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `piece` around the matches of `pattern` (the non-matches when `invert`) and appends
// the non-empty pieces to `out`, with HF semantics.
void SplitByPattern(const PreToken& piece, const Pattern& pattern, SplitBehavior behavior,
                    bool invert, std::vector<PreToken>* out);

// Immutable; thread-safe.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by its splits, in order.
  virtual void PreTokenize(std::vector<PreToken>* pieces) const = 0;
};

// Supported types: ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit, Sequence.
// Others give INVALID_ARGUMENT. May throw nlohmann::json::exception on ill-typed fields.
absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const nlohmann::json& config);

}  // namespace moe::model::tokenizer_internal

#endif  // MOE_MODEL_TOKENIZER_PRE_TOKENIZER_H_
