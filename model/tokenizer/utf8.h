// UTF-8 helpers and the GPT-2 byte-to-unicode table used by the tokenizer.
// Internal to moe_tokenizer.
#ifndef MOE_MODEL_TOKENIZER_UTF8_H_
#define MOE_MODEL_TOKENIZER_UTF8_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace moe::model::tokenizer_internal {

// Debian's Abseil has its own string_view type (ABSL_OPTION_USE_STD_STRING_VIEW is 0): convert
// before calling absl::StrCat or looking up absl string-keyed hash maps.
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length in bytes of the well-formed UTF-8 sequence starting at s[i], or 0 if the bytes at i
// are not a complete well-formed sequence (truncated, overlong, surrogate, > U+10FFFF).
size_t WellFormedLength(std::string_view s, size_t i);

// Byte length of the character at s[i] for valid UTF-8 input; 1 for an invalid byte, so a
// loop over any input always advances.
inline size_t CharLen(std::string_view s, size_t i) {
  const size_t n = WellFormedLength(s, i);
  return n == 0 ? 1 : n;
}

bool IsValidUtf8(std::string_view s);

// Replaces every ill-formed subsequence with U+FFFD using the "maximal subpart" rule (the one
// Rust's String::from_utf8_lossy, ICU and the WHATWG decoder use).
std::string Utf8Lossy(std::string_view bytes);

// Decodes the code point at s[*i] (valid UTF-8 expected) and advances *i past it. Invalid bytes
// decode as U+FFFD and advance by one.
uint32_t NextCodePoint(std::string_view s, size_t* i);

void AppendUtf8(uint32_t code_point, std::string* out);

// True if the text ends with U+FFFD (what a lossy decode of a truncated sequence yields).
bool EndsWithReplacementChar(std::string_view s);

// Unicode White_Space (what Rust's char::is_whitespace tests).
bool IsUnicodeWhitespace(uint32_t cp);

// GPT-2's reversible byte <-> printable-character mapping (bytes_to_unicode()).
// ByteToUnicode()[b] is the UTF-8 encoding of the character standing for byte b.
const std::array<std::string, 256>& ByteToUnicode();
// The byte a character stands for, or -1 if the character is not in the table.
int UnicodeToByte(uint32_t code_point);

}  // namespace moe::model::tokenizer_internal

#endif  // MOE_MODEL_TOKENIZER_UTF8_H_
