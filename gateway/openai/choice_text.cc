#include "gateway/openai/choice_text.h"

#include <algorithm>

namespace moe::gateway {

std::string StopMatcher::Add(std::string_view piece) {
  if (stopped_) return "";
  pending_.append(piece);
  if (stops_.empty()) return std::exchange(pending_, "");
  size_t best = std::string::npos, best_len = 0;
  for (const std::string& s : stops_) {
    const size_t pos = pending_.find(s);
    if (pos != std::string::npos && (best == std::string::npos || pos < best)) {
      best = pos;
      best_len = s.size();
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, best + (include_stop_ ? best_len : 0));
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::Finish() {
  if (stopped_) return "";
  return std::exchange(pending_, "");
}

ChoiceText::ChoiceText(const model::Tokenizer* tokenizer, std::vector<int32_t> eos_ids,
                       std::vector<std::string> stops, bool include_stop, bool skip_special_tokens)
    : decoder_(tokenizer, skip_special_tokens),
      eos_ids_(std::move(eos_ids)),
      stop_(std::move(stops), include_stop) {}

std::string ChoiceText::Add(int32_t id) {
  if (stop_.stopped()) return "";
  if (std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end()) return "";
  return stop_.Add(decoder_.Step(id));
}

std::string ChoiceText::Finish() {
  if (stop_.stopped()) return "";
  std::string out = stop_.Add(decoder_.Flush());
  if (stop_.stopped()) return out;
  return out + stop_.Finish();
}

}  // namespace moe::gateway
