#include "model/tokenizer/decoder.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "model/tokenizer/pattern.h"
#include "model/tokenizer/utf8.h"

namespace moe::model::tokenizer_internal {
namespace {

using nlohmann::json;

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens, raw_bytes);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

// Maps GPT-2 byte characters back to bytes. A token with a character outside the table is
// taken as raw UTF-8 (HF does the same, which keeps added tokens such as "<|im_end|>" intact).
// The whole list becomes one lossily decoded string.
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const override {
    std::string bytes;
    std::string token_bytes;
    for (const std::string& token : *tokens) {
      token_bytes.clear();
      bool mapped = true;
      for (size_t i = 0; i < token.size() && mapped;) {
        const int b = UnicodeToByte(NextCodePoint(token, &i));
        if (b < 0) {
          mapped = false;
        } else {
          token_bytes.push_back(static_cast<char>(b));
        }
      }
      bytes.append(mapped ? token_bytes : token);
    }
    tokens->assign(1, raw_bytes ? bytes : Utf8Lossy(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const override {
    for (size_t t = 0; t < tokens->size(); ++t) {
      const std::string& token = (*tokens)[t];
      std::string out;
      out.reserve(token.size());
      for (size_t pos = 0; pos < token.size();) {
        if (token.compare(pos, replacement_.size(), replacement_) == 0) {
          if (t != 0 || !strip_first_ || raw_bytes) out.push_back(' ');
          pos += replacement_.size();
        } else {
          out.push_back(token[pos++]);
        }
      }
      (*tokens)[t] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;  // prepend_scheme != "never": the first token's metaspace is dropped
};

// Runs of <0xNN> tokens become the bytes they name; an invalid UTF-8 run becomes one U+FFFD
// per byte, as in HF.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_length = 0;
    auto flush = [&] {
      if (run_length == 0) return;
      if (raw_bytes || IsValidUtf8(run)) {
        out.push_back(run);
      } else {
        for (size_t i = 0; i < run_length; ++i) out.emplace_back(kReplacementChar);
      }
      run.clear();
      run_length = 0;
    };
    for (std::string& token : *tokens) {
      if (std::optional<uint8_t> b = ParseByteToken(token)) {
        run.push_back(static_cast<char>(*b));
        ++run_length;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    *tokens = std::move(out);
  }

 private:
  static std::optional<uint8_t> ParseByteToken(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return std::nullopt;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = hex(t[3]);
    const int lo = hex(t[4]);
    if (hi < 0 || lo < 0) return std::nullopt;
    return static_cast<uint8_t>(hi * 16 + lo);
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const override {
    tokens->assign(1, absl::StrJoin(*tokens, ""));
  }
};

// Removes up to `start` leading and `stop` trailing copies of the character `content` from
// every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const override {
    if (content_.empty() || raw_bytes) return;
    for (std::string& token : *tokens) {
      size_t begin = 0;
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0; ++i) {
        begin += content_.size();
      }
      size_t end = token.size();
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_;
  size_t stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Pattern> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const override {
    for (std::string& token : *tokens) token = pattern_->ReplaceAll(token, content_);
  }

 private:
  std::unique_ptr<Pattern> pattern_;
  std::string content_;
};

// Replaces end_of_word_suffix by a space (nothing after the last token).
class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(Pattern::Literal(suffix)) {}
  void DecodeChain(std::vector<std::string>* tokens, bool raw_bytes) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      (*tokens)[i] = suffix_->ReplaceAll((*tokens)[i], i + 1 == tokens->size() ? "" : " ");
    }
  }

 private:
  std::unique_ptr<Pattern> suffix_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const json& config) {
  const std::string type = config.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const json& step : config.at("decoders")) {
      MOE_ASSIGN_OR_RETURN(auto d, ParseDecoder(step));
      steps.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    bool strip_first = true;
    if (config.contains("prepend_scheme")) {
      strip_first = config.at("prepend_scheme").get<std::string>() != "never";
    } else {
      strip_first = config.value("add_prefix_space", true);
    }
    return std::make_unique<MetaspaceDecoder>(
        config.value("replacement", std::string("\xE2\x96\x81")), strip_first);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const std::string content = config.at("content").get<std::string>();
    size_t pos = 0;
    NextCodePoint(content, &pos);
    if (content.empty() || pos != content.size()) {
      return absl::InvalidArgumentError("Strip decoder content must be one character");
    }
    return std::make_unique<StripDecoder>(content, config.value("start", size_t{0}),
                                          config.value("stop", size_t{0}));
  }
  if (type == "Replace") {
    MOE_ASSIGN_OR_RETURN(auto pattern, ParsePatternField(config.at("pattern")));
    return std::make_unique<ReplaceDecoder>(std::move(pattern),
                                            config.at("content").get<std::string>());
  }
  if (type == "BPEDecoder") {
    return std::make_unique<BpeSuffixDecoder>(config.value("suffix", std::string("</w>")));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported decoder type '", type, "'"));
}

}  // namespace moe::model::tokenizer_internal
