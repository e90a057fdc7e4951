#include "model/jinja/lexer.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe::model::jinja {
namespace {

// Text after preprocessing, with the original offset of every byte (for error positions).
struct Source {
  std::string text;
  std::vector<uint32_t> origin;

  void Append(char c, uint32_t from) {
    text.push_back(c);
    origin.push_back(from);
  }
  uint32_t OriginAt(size_t i) const {
    if (origin.empty()) return 0;
    return i < origin.size() ? origin[i] : origin.back() + 1;
  }
};

bool IsWord(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Length of the JavaScript whitespace character (\s) starting at `i`, or 0.
size_t WhitespaceAt(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 9 && c <= 13)) return 1;
  if (c < 0x80) return 0;
  auto at = [&](size_t k) -> unsigned char {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
  };
  if (c == 0xC2 && at(1) == 0xA0) return 2;
  if (c == 0xE1 && at(1) == 0x9A && at(2) == 0x80) return 3;
  if (c == 0xE2 && at(1) == 0x80 &&
      ((at(2) >= 0x80 && at(2) <= 0x8A) || at(2) == 0xA8 || at(2) == 0xA9 || at(2) == 0xAF)) {
    return 3;
  }
  if (c == 0xE2 && at(1) == 0x81 && at(2) == 0x9F) return 3;
  if (c == 0xE3 && at(1) == 0x80 && at(2) == 0x80) return 3;
  if (c == 0xEF && at(1) == 0xBB && at(2) == 0xBF) return 3;
  return 0;
}

// Length of the whitespace character that ends at `end` (exclusive), or 0.
size_t WhitespaceBefore(std::string_view s, size_t end) {
  for (size_t len = 1; len <= 3 && len <= end; ++len) {
    if (WhitespaceAt(s, end - len) == len) return len;
  }
  return 0;
}

bool IsLineStart(const std::string& t, size_t i) {
  if (i == 0) return true;
  const char p = t[i - 1];
  if (p == '\n' || p == '\r') return true;
  // U+2028 / U+2029 end lines for JavaScript's multiline `^`.
  return i >= 3 && static_cast<unsigned char>(t[i - 3]) == 0xE2 &&
         static_cast<unsigned char>(t[i - 2]) == 0x80 &&
         (static_cast<unsigned char>(t[i - 1]) == 0xA8 ||
          static_cast<unsigned char>(t[i - 1]) == 0xA9);
}

Source Preprocess(std::string_view template_source) {
  Source in;
  in.text.assign(template_source);
  in.origin.resize(in.text.size());
  for (size_t i = 0; i < in.origin.size(); ++i) in.origin[i] = static_cast<uint32_t>(i);
  // One trailing newline is not part of the template.
  if (!in.text.empty() && in.text.back() == '\n') {
    in.text.pop_back();
    in.origin.pop_back();
  }

  // lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1".
  Source lstripped;
  for (size_t i = 0; i < in.text.size();) {
    if (IsLineStart(in.text, i)) {
      size_t j = i;
      while (j < in.text.size() && (in.text[j] == ' ' || in.text[j] == '\t')) ++j;
      if (j > i && j + 1 < in.text.size() && in.text[j] == '{' &&
          (in.text[j + 1] == '#' || in.text[j + 1] == '%' || in.text[j + 1] == '-')) {
        i = j;  // drop the indentation
      }
    }
    lstripped.Append(in.text[i], in.origin[i]);
    ++i;
  }

  // trim_blocks: /([#%-]})\n/g -> "$1".
  Source trimmed;
  const std::string& l = lstripped.text;
  for (size_t i = 0; i < l.size(); ++i) {
    if (l[i] == '\n' && i >= 2 && l[i - 1] == '}' &&
        (l[i - 2] == '#' || l[i - 2] == '%' || l[i - 2] == '-')) {
      continue;
    }
    trimmed.Append(l[i], lstripped.origin[i]);
  }

  // {% generation %} / {% endgeneration %}: removed, honouring their - modifiers.
  const std::string& t = trimmed.text;
  if (t.find("generation") == std::string::npos) return trimmed;
  Source out;
  size_t last = 0;
  for (size_t p = t.find("{%"); p != std::string::npos; p = t.find("{%", p + 1)) {
    if (p < last) continue;
    size_t q = p + 2;
    const bool lstrip = q < t.size() && t[q] == '-';
    if (lstrip) ++q;
    while (size_t w = WhitespaceAt(t, q)) q += w;
    if (t.compare(q, 3, "end") == 0 && t.compare(q + 3, 10, "generation") == 0) q += 3;
    if (t.compare(q, 10, "generation") != 0) continue;
    q += 10;
    while (size_t w = WhitespaceAt(t, q)) q += w;
    const bool rstrip = q < t.size() && t[q] == '-';
    if (rstrip) ++q;
    if (t.compare(q, 2, "%}") != 0) continue;
    q += 2;
    const size_t after_begin = q;
    while (size_t w = WhitespaceAt(t, q)) q += w;
    size_t end = p;
    if (lstrip) {
      while (end > last) {
        const size_t w = WhitespaceBefore(t, end);
        if (w == 0 || end - w < last) break;
        end -= w;
      }
    }
    for (size_t k = last; k < end; ++k) out.Append(t[k], trimmed.origin[k]);
    if (!rstrip) {
      for (size_t k = after_begin; k < q; ++k) out.Append(t[k], trimmed.origin[k]);
    }
    last = q;
  }
  for (size_t k = last; k < t.size(); ++k) out.Append(t[k], trimmed.origin[k]);
  return out;
}

class Lexer {
 public:
  Lexer(std::string_view original, Source src) : original_(original), src_(std::move(src)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    const std::string& s = src_.text;
    while (pos_ < s.size()) {
      const bool after_tag = tokens_.empty() || Last() == TokenType::kCloseStatement ||
                             Last() == TokenType::kCloseExpression || Last() == TokenType::kComment;
      if (after_tag) {
        size_t end = pos_;
        while (true) {
          end = s.find('{', end);
          if (end == std::string::npos) {
            end = s.size();
            break;
          }
          const char next = end + 1 < s.size() ? s[end + 1] : '\0';
          if (next == '%' || next == '{' || next == '#') break;
          ++end;
        }
        if (end > pos_) {
          Push(TokenType::kText, s.substr(pos_, end - pos_), pos_);
          pos_ = end;
          continue;
        }
      }
      if (s[pos_] == '{') {
        const char next = Peek(1);
        if (next == '#') {
          auto status = LexComment();
          if (!status.ok()) return status;
          continue;
        }
        if (Peek(2) == '-' && (next == '%' || next == '{')) {
          StripTrailingWhitespace();
          Push(next == '%' ? TokenType::kOpenStatement : TokenType::kOpenExpression,
               next == '%' ? "{%" : "{{", pos_);
          if (next == '{') brace_depth_ = 0;
          pos_ += 3;
          continue;
        }
      }
      // Whitespace inside a tag; the input must not end here.
      while (size_t w = WhitespaceAt(s, pos_)) {
        pos_ += w;
        if (pos_ >= s.size()) return Error(pos_, "unexpected end of template");
      }
      const char c = s[pos_];
      if (c == '-' && Peek(2) == '}' && (Peek(1) == '%' || Peek(1) == '}')) {
        Push(Peek(1) == '%' ? TokenType::kCloseStatement : TokenType::kCloseExpression,
             Peek(1) == '%' ? "%}" : "}}", pos_);
        pos_ += 3;
        while (size_t w = WhitespaceAt(s, pos_)) pos_ += w;
        continue;
      }
      if (c == '-' || c == '+') {
        if (tokens_.empty() || Last() == TokenType::kText) {
          return Error(pos_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
        }
        const TokenType last = Last();
        const bool binary = last == TokenType::kIdentifier || last == TokenType::kNumber ||
                            last == TokenType::kString || last == TokenType::kCloseParen ||
                            last == TokenType::kCloseBracket;
        if (!binary) {
          const size_t start = pos_++;
          std::string num = ConsumeDigits();
          if (!num.empty() && Peek(0) == '.' && IsDigit(Peek(1))) {
            ++pos_;
            num += "." + ConsumeDigits();
          }
          if (num.empty()) {
            Push(TokenType::kUnary, std::string(1, c), start);
          } else {
            Push(TokenType::kNumber, std::string(1, c) + num, start);
          }
          continue;
        }
      }
      if (LexOperator()) continue;
      if (c == '\'' || c == '"') {
        auto status = LexString(c);
        if (!status.ok()) return status;
        continue;
      }
      if (IsDigit(c)) {
        const size_t start = pos_;
        std::string num = ConsumeDigits();
        if (Last() != TokenType::kDot && Peek(0) == '.' && IsDigit(Peek(1))) {
          ++pos_;
          num += "." + ConsumeDigits();
        }
        Push(TokenType::kNumber, std::move(num), start);
        continue;
      }
      if (IsWord(c)) {
        const size_t start = pos_;
        while (pos_ < s.size() && IsWord(s[pos_])) ++pos_;
        Push(TokenType::kIdentifier, s.substr(start, pos_ - start), start);
        continue;
      }
      return Error(pos_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
    return std::move(tokens_);
  }

 private:
  TokenType Last() const { return tokens_.empty() ? TokenType::kText : tokens_.back().type; }
  char Peek(size_t k) const { return pos_ + k < src_.text.size() ? src_.text[pos_ + k] : '\0'; }
  void Push(TokenType type, std::string value, size_t at) {
    tokens_.push_back(Token{type, std::move(value), src_.OriginAt(at)});
  }
  absl::Status Error(size_t at, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "template syntax error at ", DescribePosition(original_, src_.OriginAt(at)), ": ", what));
  }
  std::string ConsumeDigits() {
    const size_t start = pos_;
    while (pos_ < src_.text.size() && IsDigit(src_.text[pos_])) ++pos_;
    return src_.text.substr(start, pos_ - start);
  }

  void StripTrailingWhitespace() {
    if (tokens_.empty() || tokens_.back().type != TokenType::kText) return;
    std::string& text = tokens_.back().value;
    while (size_t w = WhitespaceBefore(text, text.size())) text.resize(text.size() - w);
    if (text.empty()) tokens_.pop_back();
  }

  absl::Status LexComment() {
    const std::string& s = src_.text;
    const size_t start = pos_;
    pos_ += 2;
    const bool strip_before = Peek(0) == '-';
    if (strip_before) ++pos_;
    const size_t end = s.find("#}", pos_);
    if (end == std::string::npos) return Error(start, "missing end of comment tag");
    std::string comment = s.substr(pos_, end - pos_);
    const bool strip_after = !comment.empty() && comment.back() == '-';
    if (strip_after) comment.pop_back();
    if (strip_before) StripTrailingWhitespace();
    Push(TokenType::kComment, std::move(comment), start);
    pos_ = end + 2;
    if (strip_after) {
      while (size_t w = WhitespaceAt(s, pos_)) pos_ += w;
    }
    return absl::OkStatus();
  }

  bool LexOperator() {
    struct Rule {
      const char* seq;
      TokenType type;
    };
    static constexpr Rule kRules[] = {
        {"{%", TokenType::kOpenStatement},  {"%}", TokenType::kCloseStatement},
        {"{{", TokenType::kOpenExpression}, {"}}", TokenType::kCloseExpression},
        {"(", TokenType::kOpenParen},       {")", TokenType::kCloseParen},
        {"{", TokenType::kOpenBrace},       {"}", TokenType::kCloseBrace},
        {"[", TokenType::kOpenBracket},     {"]", TokenType::kCloseBracket},
        {",", TokenType::kComma},           {".", TokenType::kDot},
        {":", TokenType::kColon},           {"|", TokenType::kPipe},
        {"<=", TokenType::kComparison},     {">=", TokenType::kComparison},
        {"==", TokenType::kComparison},     {"!=", TokenType::kComparison},
        {"<", TokenType::kComparison},      {">", TokenType::kComparison},
        {"+", TokenType::kAdditive},        {"-", TokenType::kAdditive},
        {"~", TokenType::kAdditive},        {"**", TokenType::kPower},
        {"*", TokenType::kMultiplicative},  {"//", TokenType::kMultiplicative},
        {"/", TokenType::kMultiplicative},  {"%", TokenType::kMultiplicative},
        {"=", TokenType::kEquals},
    };
    const std::string& s = src_.text;
    for (const Rule& rule : kRules) {
      const std::string_view seq(rule.seq);
      if (seq == "}}" && brace_depth_ > 0) continue;  // "}}" closing nested dict literals
      if (s.compare(pos_, seq.size(), seq) != 0) continue;
      Push(rule.type, std::string(seq), pos_);
      if (rule.type == TokenType::kOpenExpression) {
        brace_depth_ = 0;
      } else if (rule.type == TokenType::kOpenBrace) {
        ++brace_depth_;
      } else if (rule.type == TokenType::kCloseBrace) {
        --brace_depth_;
      }
      pos_ += seq.size();
      return true;
    }
    return false;
  }

  absl::Status LexString(char quote) {
    const std::string& s = src_.text;
    const size_t start = pos_++;
    std::string value;
    while (true) {
      if (pos_ >= s.size()) return Error(start, "unterminated string literal");
      const char c = s[pos_];
      if (c == quote) break;
      ++pos_;
      if (c != '\\') {
        value.push_back(c);
        continue;
      }
      if (pos_ >= s.size()) return Error(start, "unterminated string literal");
      const char e = s[pos_++];
      switch (e) {
        case 'n':
          value.push_back('\n');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case '\'':
        case '"':
        case '\\':
          value.push_back(e);
          break;
        case 'x':
        case 'u': {
          const size_t len = e == 'x' ? 2 : 4;
          uint32_t cp = 0;
          for (size_t k = 0; k < len; ++k) {
            const char h = pos_ + k < s.size() ? s[pos_ + k] : '\0';
            int d = -1;
            if (h >= '0' && h <= '9') d = h - '0';
            if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
            if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
            if (d < 0) return Error(pos_, "invalid hexadecimal escape sequence");
            cp = cp * 16 + static_cast<uint32_t>(d);
          }
          pos_ += len;
          AppendUtf8(cp, &value);
          break;
        }
        default:
          // Python keeps unknown escapes as written.
          value.push_back('\\');
          value.push_back(e);
          break;
      }
    }
    ++pos_;  // closing quote
    Push(TokenType::kString, std::move(value), start);
    return absl::OkStatus();
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // lone surrogate
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  std::string_view original_;
  Source src_;
  size_t pos_ = 0;
  int brace_depth_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::string DescribePosition(std::string_view source, uint32_t offset) {
  size_t line = 1;
  size_t line_start = 0;
  const size_t end = std::min<size_t>(offset, source.size());
  for (size_t i = 0; i < end; ++i) {
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return absl::StrCat("line ", line, ", column ", end - line_start + 1);
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source) {
  Lexer lexer(source, Preprocess(source));
  return lexer.Run();
}

}  // namespace moe::model::jinja
