// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}). Internal to moe_tokenizer.
#ifndef MOE_MODEL_TOKENIZER_BPE_MODEL_H_
#define MOE_MODEL_TOKENIZER_BPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace moe::model::tokenizer_internal {

// Byte-pair encoding with HF semantics: merges applied lowest rank first (ties: leftmost),
// byte_fallback to <0xNN> tokens, unk_token (optionally fused), continuing_subword_prefix,
// end_of_word_suffix and ignore_merges. `dropout` is ignored (encoding is deterministic).
// No word cache: merging is O(n log n) per word. Immutable after parsing; thread-safe.
class BpeModel {
 public:
  // Token ids (model and added tokens) must be below this.
  static constexpr int64_t kMaxTokenId = int64_t{1} << 24;

  // INVALID_ARGUMENT for a malformed model (missing vocab, merges naming unknown tokens, unk
  // token not in the vocabulary, dropout). May throw nlohmann::json::exception on ill-typed
  // fields.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of one pre-tokenized word (UTF-8; byte-level words are already mapped).
  // O(n log n) in the word's length.
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // Null for ids not in the vocabulary.
  const std::string* IdToToken(int32_t id) const;
  // One more than the largest id.
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }
  const std::string& end_of_word_suffix() const { return end_of_word_suffix_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  // The per-character symbols of a word before merging (HF BPE::merge_word).
  void InitialSymbols(std::string_view word, std::vector<int32_t>* symbols) const;
  void MergeAll(std::vector<int32_t>* symbols) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  int32_t byte_ids_[256];  // <0xNN> ids for byte_fallback, -1 if absent
};

}  // namespace moe::model::tokenizer_internal

#endif  // MOE_MODEL_TOKENIZER_BPE_MODEL_H_
