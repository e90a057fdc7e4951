#include "model/tokenizer/added_tokens.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "model/tokenizer/utf8.h"

namespace moe::model::tokenizer_internal {
namespace {

// Rust's char::is_alphanumeric (Alphabetic or Numeric) or '_': what single_word looks at.
bool IsWordChar(uint32_t cp) {
  if (cp == '_') return true;
  const auto c = static_cast<UChar32>(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC)) return true;
  const int8_t type = u_charType(c);
  return type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER;
}

// Offset of the code point that ends at `end` (exclusive).
size_t PreviousCharStart(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

bool EndsWithWordChar(std::string_view text, size_t end) {
  if (end == 0) return false;
  size_t start = PreviousCharStart(text, end);
  return IsWordChar(NextCodePoint(text, &start));
}

bool StartsWithWordChar(std::string_view text, size_t begin) {
  if (begin >= text.size()) return false;
  return IsWordChar(NextCodePoint(text, &begin));
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<const AddedToken*>& tokens,
                                     const std::vector<std::string>& patterns)
    : tokens_(tokens) {
  terminal_.push_back(-1);
  for (size_t i = 0; i < patterns.size(); ++i) {
    const std::string& p = patterns[i];
    if (p.empty()) continue;
    first_byte_[static_cast<uint8_t>(p[0])] = true;
    int32_t node = 0;
    for (char c : p) {
      const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(c);
      auto [it, inserted] = edges_.try_emplace(key, static_cast<int32_t>(terminal_.size()));
      if (inserted) terminal_.push_back(-1);
      node = it->second;
    }
    if (terminal_[node] < 0) terminal_[node] = static_cast<int32_t>(i);  // first one wins
  }
}

std::pair<int32_t, size_t> AddedTokenMatcher::LongestAt(std::string_view text, size_t pos) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(text[i]);
    auto it = edges_.find(key);
    if (it == edges_.end()) break;
    node = it->second;
    if (terminal_[node] >= 0) best = {terminal_[node], i + 1 - pos};
  }
  return best;
}

std::vector<AddedTokenMatcher::Segment> AddedTokenMatcher::Split(std::string_view text) const {
  std::vector<Segment> segments;
  size_t covered = 0;  // text before this offset is already in `segments`
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    const auto [index, length] = LongestAt(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = *tokens_[index];
    size_t begin = pos;
    size_t end = pos + length;
    // Leftmost-longest matches never overlap, so the next search starts after this match
    // whether or not it is kept.
    pos = end;
    if (begin < covered) continue;  // inside whitespace an earlier rstrip took
    if (token.single_word && (EndsWithWordChar(text, begin) || StartsWithWordChar(text, end))) {
      continue;
    }
    if (token.lstrip) {
      size_t b = begin;
      while (b > covered) {
        size_t start = PreviousCharStart(text, b);
        size_t next = start;
        if (!IsUnicodeWhitespace(NextCodePoint(text, &next))) break;
        b = start;
      }
      begin = b;
    }
    if (token.rstrip) {
      while (end < text.size()) {
        size_t next = end;
        if (!IsUnicodeWhitespace(NextCodePoint(text, &next))) break;
        end = next;
      }
      pos = std::max(pos, end);
    }
    if (begin > covered) segments.push_back({covered, begin, -1});
    segments.push_back({begin, end, index});
    covered = end;
  }
  if (covered < text.size()) segments.push_back({covered, text.size(), -1});
  return segments;
}

}  // namespace moe::model::tokenizer_internal
