// tokenizer.json "post_processor": special tokens added around an encoded single sequence
// (add_special_tokens). Internal to moe_tokenizer.
#ifndef MOE_MODEL_TOKENIZER_POST_PROCESSOR_H_
#define MOE_MODEL_TOKENIZER_POST_PROCESSOR_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::model::tokenizer_internal {

// Immutable; thread-safe.
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Rewrites the ids of one sequence (pairs are not supported).
  virtual void Process(std::vector<int32_t>* ids) const = 0;
};

// Supported types: TemplateProcessing (the "single" template), ByteLevel (no id change),
// BertProcessing, RobertaProcessing, Sequence. INVALID_ARGUMENT for other types. May throw
// nlohmann::json::exception.
absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(const nlohmann::json& config);

}  // namespace moe::model::tokenizer_internal

#endif  // MOE_MODEL_TOKENIZER_POST_PROCESSOR_H_
