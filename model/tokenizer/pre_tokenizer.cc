#include "model/tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status.h"
#include "model/tokenizer/utf8.h"

namespace moe::model::tokenizer_internal {
namespace {

using nlohmann::json;

// The GPT-2 pre-tokenization regex (HF ByteLevel with use_regex).
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Segment {
  size_t begin;
  size_t end;
  bool is_match;
};

// Applies HF's fold for each behaviour to the segments covering the text.
std::vector<Segment> ApplyBehavior(std::vector<Segment> segments, SplitBehavior behavior) {
  std::vector<Segment> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Segment& s : segments) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case SplitBehavior::kIsolated:
      return segments;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    case SplitBehavior::kContiguous:
      for (size_t i = 0; i < segments.size(); ++i) {
        if (i > 0 && segments[i].is_match == previous_match) {
          out.back().end = segments[i].end;
        } else {
          out.push_back(segments[i]);
        }
        previous_match = segments[i].is_match;
      }
      return out;
  }
  return out;
}

absl::StatusOr<SplitBehavior> ParseBehavior(const std::string& name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat("unknown split behavior '", name, "'"));
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    for (const auto& step : steps_) step->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Splits every piece by a pattern; the base of Split, Digits, Whitespace, WhitespaceSplit.
class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Pattern> pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    for (const PreToken& piece : *pieces) {
      SplitByPattern(piece, *pattern_, behavior_, invert_, &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::unique_ptr<Pattern> pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Pattern> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> split;
    for (PreToken& piece : *pieces) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) {
        piece.text.insert(0, " ");
      }
      if (regex_ != nullptr) {
        SplitByPattern(piece, *regex_, SplitBehavior::kIsolated, false, &split);
      } else if (!piece.text.empty()) {
        split.push_back(std::move(piece));
      }
    }
    const auto& table = ByteToUnicode();
    for (PreToken& piece : split) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (char c : piece.text) mapped.append(table[static_cast<uint8_t>(c)]);
      piece.text = std::move(mapped);
    }
    *pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Pattern> regex_;  // null without use_regex
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)),
        scheme_(scheme),
        split_(split),
        delimiter_(Pattern::Literal(replacement_)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    for (PreToken& piece : *pieces) {
      piece.text = absl::StrReplaceAll(piece.text, {{" ", replacement_}});
      const bool prepend = scheme_ == PrependScheme::kAlways ||
                           (scheme_ == PrependScheme::kFirst && piece.at_original_start);
      if (prepend && piece.text.compare(0, replacement_.size(), replacement_) != 0) {
        piece.text.insert(0, replacement_);
      }
      if (split_) {
        SplitByPattern(piece, *delimiter_, SplitBehavior::kMergedWithNext, false, &out);
      } else if (!piece.text.empty()) {
        out.push_back(std::move(piece));
      }
    }
    *pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  std::unique_ptr<Pattern> delimiter_;
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakeSplit(std::string_view regex,
                                                        SplitBehavior behavior, bool invert) {
  MOE_ASSIGN_OR_RETURN(auto pattern, Pattern::Regex(regex));
  return std::make_unique<SplitPreTokenizer>(std::move(pattern), behavior, invert);
}

}  // namespace

void SplitByPattern(const PreToken& piece, const Pattern& pattern, SplitBehavior behavior,
                    bool invert, std::vector<PreToken>* out) {
  const std::string& text = piece.text;
  std::vector<Segment> segments;
  size_t previous = 0;
  for (const auto& [begin, end] : pattern.FindAll(text)) {
    if (begin > previous) segments.push_back({previous, begin, false});
    segments.push_back({begin, end, true});
    previous = end;
  }
  if (previous < text.size()) segments.push_back({previous, text.size(), false});
  if (invert) {
    for (Segment& s : segments) s.is_match = !s.is_match;
  }
  for (const Segment& s : ApplyBehavior(std::move(segments), behavior)) {
    if (s.end <= s.begin) continue;
    out->push_back(
        {text.substr(s.begin, s.end - s.begin), piece.at_original_start && s.begin == 0});
  }
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const json& config) {
  const std::string type = config.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const json& step : config.at("pretokenizers")) {
      MOE_ASSIGN_OR_RETURN(auto p, ParsePreTokenizer(step));
      steps.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "ByteLevel") {
    std::unique_ptr<Pattern> regex;
    if (config.value("use_regex", true)) {
      MOE_ASSIGN_OR_RETURN(regex, Pattern::Regex(kGpt2Regex));
    }
    return std::make_unique<ByteLevelPreTokenizer>(config.value("add_prefix_space", true),
                                                   std::move(regex));
  }
  if (type == "Split") {
    MOE_ASSIGN_OR_RETURN(auto pattern, ParsePatternField(config.at("pattern")));
    MOE_ASSIGN_OR_RETURN(SplitBehavior behavior,
                         ParseBehavior(config.at("behavior").get<std::string>()));
    return std::make_unique<SplitPreTokenizer>(std::move(pattern), behavior,
                                               config.value("invert", false));
  }
  if (type == "Metaspace") {
    const std::string replacement = config.value("replacement", std::string("\xE2\x96\x81"));
    PrependScheme scheme = PrependScheme::kAlways;
    if (config.contains("prepend_scheme")) {
      const std::string s = config.at("prepend_scheme").get<std::string>();
      if (s == "first") {
        scheme = PrependScheme::kFirst;
      } else if (s == "never") {
        scheme = PrependScheme::kNever;
      } else if (s != "always") {
        return absl::InvalidArgumentError(absl::StrCat("unknown prepend_scheme '", s, "'"));
      }
    } else if (!config.value("add_prefix_space", true)) {
      scheme = PrependScheme::kNever;  // pre-0.19 files
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme,
                                                   config.value("split", true));
  }
  if (type == "Digits") {
    return MakeSplit("\\p{N}",
                     config.value("individual_digits", false) ? SplitBehavior::kIsolated
                                                              : SplitBehavior::kContiguous,
                     false);
  }
  if (type == "Whitespace") return MakeSplit("\\w+|[^\\w\\s]+", SplitBehavior::kRemoved, true);
  if (type == "WhitespaceSplit") return MakeSplit("\\s+", SplitBehavior::kRemoved, false);
  return absl::InvalidArgumentError(absl::StrCat("unsupported pre_tokenizer type '", type, "'"));
}

}  // namespace moe::model::tokenizer_internal
