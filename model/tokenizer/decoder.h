// tokenizer.json "decoder" section: turns token strings back into text. Internal to
// moe_tokenizer.
#ifndef MOE_MODEL_TOKENIZER_DECODER_H_
#define MOE_MODEL_TOKENIZER_DECODER_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::model::tokenizer_internal {

// One step of HF's decode_chain: maps a list of token strings to a new list. The final text is
// the concatenation of the last list. Immutable; thread-safe.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // With `raw_bytes`, the tokens are decoded as they contribute to the middle of a text: bytes
  // are not checked or replaced (the result may be partial UTF-8), nothing is stripped and the
  // first token is not treated specially. Used for a single token's bytes.
  virtual void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const = 0;
};

// Supported types: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, BPEDecoder,
// Sequence. Others give INVALID_ARGUMENT. May throw nlohmann::json::exception.
absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const nlohmann::json& config);

}  // namespace moe::model::tokenizer_internal

#endif  // MOE_MODEL_TOKENIZER_DECODER_H_
