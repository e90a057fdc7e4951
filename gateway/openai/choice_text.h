// The text of one choice as its tokens arrive: incremental detokenization (a character split
// over several tokens is held back until complete, so no piece ends in a broken UTF-8
// sequence) and stop strings (matched across token boundaries; text that may be the start of a
// stop string is held back until it is known not to be one; the stop string itself is left
// out unless include_stop is set). End-of-sequence tokens never produce text.
// Not thread-safe: one per choice. The tokenizer must outlive it.
#ifndef MOE_GATEWAY_OPENAI_CHOICE_TEXT_H_
#define MOE_GATEWAY_OPENAI_CHOICE_TEXT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer/stream_decoder.h"
#include "model/tokenizer/tokenizer.h"

namespace moe::gateway {

// Stop-string matching over a stream of text pieces (no tokenizer involved).
class StopMatcher {
 public:
  StopMatcher(std::vector<std::string> stops, bool include_stop)
      : stops_(std::move(stops)), include_stop_(include_stop) {}
  // Adds text; returns what can be shown now. After a match, stopped() and the rest is dropped.
  std::string Add(std::string_view piece);
  // End of the stream: returns the held-back text.
  std::string Finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  bool include_stop_;
  bool stopped_ = false;
  std::string pending_;
};

class ChoiceText {
 public:
  ChoiceText(const model::Tokenizer* tokenizer, std::vector<int32_t> eos_ids,
             std::vector<std::string> stops, bool include_stop, bool skip_special_tokens);
  // Adds one generated token; returns the text that can be shown now (often empty). Once a
  // stop string has matched, stopped() is true and later tokens add nothing.
  std::string Add(int32_t id);
  // End of the generation: the text still held back.
  std::string Finish();
  bool stopped() const { return stop_.stopped(); }

 private:
  model::StreamDecoder decoder_;
  std::vector<int32_t> eos_ids_;
  StopMatcher stop_;
};

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_OPENAI_CHOICE_TEXT_H_
