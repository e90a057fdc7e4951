// Incremental detokenization for streaming generation.
#ifndef MOE_MODEL_TOKENIZER_STREAM_DECODER_H_
#define MOE_MODEL_TOKENIZER_STREAM_DECODER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer/tokenizer.h"

namespace moe::model {

// Turns generated ids into text one id at a time. Each Step returns the text newly completed
// by that id (often empty): a character whose UTF-8 bytes are split over several tokens
// (byte-level or <0xNN> tokens) is held back until the tokens that complete it arrive, so
// every returned piece is valid UTF-8 and never ends in a half character. Flush returns what
// is still held at the end (an incomplete sequence comes out as U+FFFD) and resets the
// decoder. The concatenation of all returned pieces equals tokenizer.Decode(all ids), up to
// the pathological case of more than kMaxPendingIds ids that each end in U+FFFD.
//
// This is HF's DecodeStream algorithm: the ids since the last emitted point plus one id of
// context are decoded, and the part beyond the previously decoded prefix is emitted.
// Not thread-safe: one StreamDecoder per sequence. The tokenizer must outlive it.
class StreamDecoder {
 public:
  // Ids held without output before Step emits anyway (bounds the work per step).
  static constexpr size_t kMaxPendingIds = 16;

  explicit StreamDecoder(const Tokenizer* tokenizer, bool skip_special_tokens = true);

  // Adds one id; returns the newly completed text (possibly empty).
  std::string Step(int32_t id);
  // Returns the rest of the text and resets the decoder for a new sequence.
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  // Text of ids_ beyond `prefix_`, given the decode of all of ids_.
  std::string NewText(const std::string& decoded) const;

  std::vector<int32_t> ids_;  // ids_[0, prefix_index_) were emitted last time (context),
                              // the rest are held
  std::string prefix_;        // Decode of the context ids
  size_t prefix_index_ = 0;
};

}  // namespace moe::model

#endif  // MOE_MODEL_TOKENIZER_STREAM_DECODER_H_
