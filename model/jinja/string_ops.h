// UTF-8 string helpers of the Jinja builtins: Python str methods (strip, split, replace) and the
// case mappings @huggingface/jinja applies. Internal to model/jinja. Lengths and indices count
// code points; invalid UTF-8 bytes count as one character each.
#ifndef MOE_MODEL_JINJA_STRING_OPS_H_
#define MOE_MODEL_JINJA_STRING_OPS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/jinja/value.h"

namespace moe::model::jinja::internal {

// Byte length of the UTF-8 character starting at `i` (1 for an invalid byte).
size_t Utf8CharLen(std::string_view s, size_t i);
// The characters of `s`, each a view into `s`.
std::vector<std::string_view> Utf8Chars(std::string_view s);
// Number of code points in `s`.
size_t Utf8Length(std::string_view s);
// JavaScript's \s: ASCII whitespace and the Unicode space separators.
bool IsSpaceChar(std::string_view ch);

// Strips characters from the ends: whitespace when `chars` is null or not a string, else any
// code point of `chars` (Python's str.strip(chars)).
std::string StripChars(std::string_view s, const Value* chars, bool left, bool right);
// ASCII case mappings (non-ASCII text is kept as is).
std::string AsciiUpper(std::string s);
std::string AsciiLower(std::string s);
// @huggingface/jinja's title(): the first word character of every word upper-cased.
std::string TitleCase(std::string s);
// First character upper-cased, the rest kept.
std::string Capitalize(std::string s);
// Python's str.replace(from, to, count); count < 0 replaces all.
std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to,
                       int64_t count);
// Jinja's escape filter: & < > " ' as HTML entities.
std::string HtmlEscape(std::string_view s);
// Python's str.split(sep=None, maxsplit=-1); `sep` and `maxsplit` may be null.
absl::StatusOr<Value> Split(const std::string& s, const Value* sep, const Value* maxsplit);
// str.startswith / str.endswith with a string or an array of strings.
absl::StatusOr<bool> StartsOrEnds(const std::string& s, const std::vector<Value>& args,
                                  bool starts);

}  // namespace moe::model::jinja::internal

#endif  // MOE_MODEL_JINJA_STRING_OPS_H_
