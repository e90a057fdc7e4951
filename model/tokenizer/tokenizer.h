// Tokenizer for Hugging Face model folders: reads tokenizer.json (BPE: GPT-2 style byte-level
// and SentencePiece style with byte fallback) and encodes/decodes like HF `tokenizers`.
//
//   MOE_ASSIGN_OR_RETURN(auto tok, Tokenizer::FromFile(dir + "/tokenizer.json"));
//   std::vector<int32_t> ids = tok->Encode("Hello");   // with the post-processor's BOS etc.
//   std::string text = tok->Decode(ids);                // special tokens skipped
//
// Supported tokenizer.json parts (anything else is INVALID_ARGUMENT at load):
//   model: BPE (vocab, merges as "a b" or ["a","b"], byte_fallback, unk_token, fuse_unk,
//          continuing_subword_prefix, end_of_word_suffix, ignore_merges; dropout ignored)
//   normalizer: Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents
//   pre_tokenizer: ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit, Sequence
//   post_processor: TemplateProcessing (single), ByteLevel, BertProcessing, RobertaProcessing,
//                   Sequence
//   decoder: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, BPEDecoder, Sequence
// Truncation and padding sections are ignored.
#ifndef MOE_MODEL_TOKENIZER_TOKENIZER_H_
#define MOE_MODEL_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moe::model {

namespace tokenizer_internal {
class AddedTokenMatcher;
class BpeModel;
class Decoder;
class Normalizer;
class PostProcessor;
class PreTokenizer;
struct AddedToken;
}  // namespace tokenizer_internal

// Immutable after loading; every method is const and safe to call from many threads at once.
class Tokenizer {
 public:
  // Reads and parses a tokenizer.json file. NOT_FOUND if it cannot be read; INVALID_ARGUMENT
  // (naming the file) if it is not valid JSON or describes an unsupported tokenizer.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(
      const std::string& tokenizer_json_path);
  // Parses tokenizer.json text. INVALID_ARGUMENT on malformed or unsupported input.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Encodes UTF-8 text (ill-formed bytes are replaced by U+FFFD first). Added tokens in the
  // text (e.g. "<|endoftext|>") are matched first and map to their ids. With
  // `add_special_tokens`, the post-processor runs (e.g. BOS for Mixtral-style tokenizers).
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens = true) const;

  // Decodes ids to UTF-8 text (ill-formed byte sequences become U+FFFD, as in HF). Ids that
  // are not in the vocabulary are ignored. `skip_special_tokens` drops special added tokens.
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = true) const;

  // One more than the largest id (model vocabulary and added tokens).
  int32_t vocab_size() const { return vocab_size_; }
  // The id of a token string (added tokens first, then the model vocabulary).
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token string of an id as stored in tokenizer.json (e.g. "Ġthe", "▁the", "<0x0A>");
  // empty for unknown ids.
  std::string IdToToken(int32_t id) const;
  // True for added tokens marked "special" (BOS, EOS, chat markers).
  bool IsSpecial(int32_t id) const;
  // The raw bytes one token contributes to a text (for logprobs `bytes` fields); may be a
  // partial UTF-8 sequence (e.g. byte-fallback or byte-level tokens). Empty for special tokens
  // and unknown ids.
  std::string TokenBytes(int32_t id) const;

 private:
  Tokenizer();
  // Builds every component from the parsed tokenizer.json; may throw nlohmann exceptions.
  absl::Status Load(const nlohmann::json& root);
  // Lists the token strings for `ids` as HF's decode does.
  std::vector<std::string> IdsToTokens(absl::Span<const int32_t> ids,
                                       bool skip_special_tokens) const;
  // Encodes one piece of text that holds no added token.
  void EncodePlain(std::string text, bool at_original_start, std::vector<int32_t>* ids) const;

  std::unique_ptr<tokenizer_internal::BpeModel> model_;
  std::unique_ptr<tokenizer_internal::Normalizer> normalizer_;
  std::unique_ptr<tokenizer_internal::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tokenizer_internal::PostProcessor> post_processor_;
  std::unique_ptr<tokenizer_internal::Decoder> decoder_;
  std::vector<tokenizer_internal::AddedToken> added_tokens_;
  absl::flat_hash_map<int32_t, size_t> added_by_id_;  // id -> index in added_tokens_
  absl::flat_hash_map<std::string, int32_t> added_by_content_;
  std::unique_ptr<tokenizer_internal::AddedTokenMatcher> raw_matcher_;         // normalized=false
  std::unique_ptr<tokenizer_internal::AddedTokenMatcher> normalized_matcher_;  // normalized=true
  int32_t vocab_size_ = 0;
};

}  // namespace moe::model

#endif  // MOE_MODEL_TOKENIZER_TOKENIZER_H_
