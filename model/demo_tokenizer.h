// A deterministic GPT-2 style byte-level BPE tokenizer for the demo models.
//
// Vocabulary layout for vocab_size V: ids 0..255 are the single bytes (id = byte value, spelled in
// GPT-2's byte-to-unicode alphabet, as in the golden tokenizer.json), ids 256..V-4 are learned
// merges (one new token per merge, in rank order), and the last three ids are the added special
// tokens <|endoftext|> (V-3, EOS), <|im_start|> (V-2) and <|im_end|> (V-1).
//
// The merges come from a BPE training run over a built-in, deterministically generated
// English-like corpus (pre-tokenized with the GPT-2 regex), extended with synthetic words when
// it runs out of pairs. Training uses only integer arithmetic and a fixed PRNG: the result is
// identical on every platform.
#ifndef MOE_MODEL_DEMO_TOKENIZER_H_
#define MOE_MODEL_DEMO_TOKENIZER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::model {

inline constexpr int kDemoNumSpecialTokens = 3;
inline constexpr char kDemoEndOfText[] = "<|endoftext|>";
inline constexpr char kDemoImStart[] = "<|im_start|>";
inline constexpr char kDemoImEnd[] = "<|im_end|>";

struct BpeVocab {
  // token strings in GPT-2 byte-to-unicode spelling, index = id (bytes and merges only).
  std::vector<std::string> tokens;
  // merges in rank order, as pairs of token strings; merge i creates token 256 + i.
  std::vector<std::pair<std::string, std::string>> merges;
};

// Learns `num_merges` merges. Deterministic; a few seconds at most for 32k merges.
BpeVocab TrainDemoBpe(int num_merges);

// The GPT-2 byte-to-unicode spelling of a byte string ("Ġthe" for " the").
std::string ByteLevelEncode(std::string_view bytes);

// tokenizer.json for a vocabulary of `vocab_size` ids (>= 256 + 3). INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> DemoTokenizerJson(int vocab_size);

// tokenizer_config.json (Qwen-style ChatML chat template, add_bos_token false),
// special_tokens_map.json.
std::string DemoTokenizerConfigJson(int vocab_size, int model_max_length);
std::string DemoSpecialTokensMapJson();

// The ChatML chat template written into tokenizer_config.json.
extern const char kDemoChatTemplate[];

}  // namespace moe::model

#endif  // MOE_MODEL_DEMO_TOKENIZER_H_
