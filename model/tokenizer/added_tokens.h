// tokenizer.json "added_tokens": matched in the input before the model sees it.
// Internal to moe_tokenizer.
#ifndef MOE_MODEL_TOKENIZER_ADDED_TOKENS_H_
#define MOE_MODEL_TOKENIZER_ADDED_TOKENS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace moe::model::tokenizer_internal {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool single_word = false;  // match only when not inside a word
  bool normalized = false;   // matched in normalized text instead of the raw input
};

// Finds added tokens in text with HF's rules: leftmost-longest matches, then single_word,
// lstrip and rstrip. Immutable; thread-safe.
class AddedTokenMatcher {
 public:
  struct Segment {
    size_t begin;
    size_t end;
    int32_t token;  // index into the tokens given to the constructor, or -1 for plain text
  };

  // `patterns[i]` is the text to find for `tokens[i]` (its content, or its normalized content).
  // Pointers must outlive the matcher.
  AddedTokenMatcher(const std::vector<const AddedToken*>& tokens,
                    const std::vector<std::string>& patterns);

  bool empty() const { return tokens_.empty(); }

  // Segments covering all of `text` in order (empty text gives no segments). Whitespace taken
  // by lstrip/rstrip belongs to the added token's segment.
  std::vector<Segment> Split(std::string_view text) const;

  const AddedToken& token(int32_t index) const { return *tokens_[index]; }

 private:
  // Longest pattern starting at text[pos]: its index and length, or {-1, 0}.
  std::pair<int32_t, size_t> LongestAt(std::string_view text, size_t pos) const;

  std::vector<const AddedToken*> tokens_;
  // Byte trie: node 0 is the root; edges_ maps (node << 8 | byte) to the child node.
  absl::flat_hash_map<uint64_t, int32_t> edges_;
  std::vector<int32_t> terminal_;  // per node: pattern index ending here, or -1
  bool first_byte_[256] = {};
};

}  // namespace moe::model::tokenizer_internal

#endif  // MOE_MODEL_TOKENIZER_ADDED_TOKENS_H_
