// tokenizer.json "normalizer" section. Internal to moe_tokenizer.
#ifndef MOE_MODEL_TOKENIZER_NORMALIZER_H_
#define MOE_MODEL_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace moe::model::tokenizer_internal {

// Rewrites text before pre-tokenization. Immutable; thread-safe.
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `text` is valid UTF-8; so is the result.
  virtual std::string Normalize(std::string_view text) const = 0;
};

// Supported types: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD (via ICU), Lowercase,
// Strip, StripAccents. Others (BertNormalizer, Precompiled, ...) give INVALID_ARGUMENT.
// `config` must be a JSON object. May throw nlohmann::json::exception on ill-typed fields.
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& config);

}  // namespace moe::model::tokenizer_internal

#endif  // MOE_MODEL_TOKENIZER_NORMALIZER_H_
