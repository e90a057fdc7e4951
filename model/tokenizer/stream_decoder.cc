#include "model/tokenizer/stream_decoder.h"

#include "model/tokenizer/utf8.h"

namespace moe::model {

StreamDecoder::StreamDecoder(const Tokenizer* tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string StreamDecoder::NewText(const std::string& decoded) const {
  if (decoded.compare(0, prefix_.size(), prefix_) == 0) return decoded.substr(prefix_.size());
  // The context decodes differently with more ids after it (not seen with the supported
  // decoders): emit what follows the common prefix, cut at a character boundary.
  size_t common = 0;
  while (common < prefix_.size() && common < decoded.size() && prefix_[common] == decoded[common]) {
    ++common;
  }
  while (common > 0 && (static_cast<uint8_t>(decoded[common]) & 0xC0) == 0x80) --common;
  return decoded.substr(common);
}

std::string StreamDecoder::Step(int32_t id) {
  ids_.push_back(id);
  const std::string decoded = tokenizer_->Decode(ids_, skip_special_tokens_);
  const size_t pending = ids_.size() - prefix_index_;
  if (decoded.size() <= prefix_.size()) {
    // Ids that add no text (e.g. skipped special tokens): drop them once there are many, so
    // the window stays small.
    if (pending >= kMaxPendingIds && decoded == prefix_) ids_.resize(prefix_index_);
    return std::string();
  }
  if (tokenizer_internal::EndsWithReplacementChar(decoded) && pending < kMaxPendingIds) {
    return std::string();  // maybe a character whose remaining bytes are still to come
  }
  std::string text = NewText(decoded);
  // Keep only the ids just emitted as context for the next step.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  prefix_index_ = ids_.size();
  prefix_ = tokenizer_->Decode(ids_, skip_special_tokens_);
  return text;
}

std::string StreamDecoder::Flush() {
  std::string text;
  if (ids_.size() > prefix_index_) text = NewText(tokenizer_->Decode(ids_, skip_special_tokens_));
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  return text;
}

}  // namespace moe::model
