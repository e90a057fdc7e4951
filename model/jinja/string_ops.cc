#include "model/jinja/string_ops.h"

#include <algorithm>

#include "absl/status/status.h"

namespace moe::model::jinja::internal {

size_t Utf8CharLen(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = 1;
  if ((c & 0xE0) == 0xC0) len = 2;
  if ((c & 0xF0) == 0xE0) len = 3;
  if ((c & 0xF8) == 0xF0) len = 4;
  return std::min(len, s.size() - i);
}

std::vector<std::string_view> Utf8Chars(std::string_view s) {
  std::vector<std::string_view> chars;
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8CharLen(s, i);
    chars.push_back(s.substr(i, len));
    i += len;
  }
  return chars;
}

bool IsSpaceChar(std::string_view ch) {
  if (ch.size() == 1) {
    const char c = ch[0];
    return c == ' ' || (c >= 9 && c <= 13);
  }
  static constexpr std::string_view kSpaces[] = {"\u00a0", "\u1680", "\u2000", "\u2001", "\u2002",
                                                 "\u2003", "\u2004", "\u2005", "\u2006", "\u2007",
                                                 "\u2008", "\u2009", "\u200a", "\u2028", "\u2029",
                                                 "\u202f", "\u205f", "\u3000", "\ufeff"};
  for (std::string_view sp : kSpaces) {
    if (ch == sp) return true;
  }
  return false;
}

std::string StripChars(std::string_view s, const Value* chars, bool left, bool right) {
  std::vector<std::string_view> set;
  const bool whitespace = chars == nullptr || !chars->is_string();
  if (!whitespace) set = Utf8Chars(chars->as_string());
  auto strip = [&](std::string_view ch) {
    if (whitespace) return IsSpaceChar(ch);
    return std::find(set.begin(), set.end(), ch) != set.end();
  };
  std::vector<std::string_view> cs = Utf8Chars(s);
  size_t begin = 0;
  size_t end = cs.size();
  if (left) {
    while (begin < end && strip(cs[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip(cs[end - 1])) --end;
  }
  std::string out;
  for (size_t i = begin; i < end; ++i) out.append(cs[i]);
  return out;
}

std::string AsciiUpper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

std::string AsciiLower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

namespace {
bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

absl::Status Err(std::string_view what) { return absl::InvalidArgumentError(std::string(what)); }
}  // namespace

std::string TitleCase(std::string s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (IsWordChar(s[i]) && (i == 0 || !IsWordChar(s[i - 1])) && s[i] >= 'a' && s[i] <= 'z') {
      s[i] = static_cast<char>(s[i] - 'a' + 'A');
    }
  }
  return s;
}

std::string Capitalize(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to,
                       int64_t count) {
  std::string out;
  if (count == 0) return std::string(s);
  int64_t remaining = count < 0 ? INT64_MAX : count;
  if (from.empty()) {
    // Python: inserts `to` before every character and at the end.
    for (std::string_view ch : Utf8Chars(s)) {
      if (remaining > 0) {
        out.append(to);
        --remaining;
      }
      out.append(ch);
    }
    if (remaining > 0) out.append(to);
    return out;
  }
  size_t pos = 0;
  while (remaining > 0) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
    --remaining;
  }
  out.append(s.substr(pos));
  return out;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<Value> Split(const std::string& s, const Value* sep, const Value* maxsplit) {
  int64_t max = -1;
  if (maxsplit != nullptr) {
    if (!maxsplit->is_int()) return Err("split: maxsplit must be an integer");
    max = maxsplit->as_int();
  }
  std::vector<Value> parts;
  if (sep == nullptr || sep->is_none() || sep->is_undefined()) {
    const std::vector<std::string_view> chars = Utf8Chars(s);
    size_t i = 0;
    while (i < chars.size()) {
      while (i < chars.size() && IsSpaceChar(chars[i])) ++i;
      if (i >= chars.size()) break;
      if (max >= 0 && static_cast<int64_t>(parts.size()) >= max) {
        std::string rest;
        for (size_t k = i; k < chars.size(); ++k) rest.append(chars[k]);
        parts.push_back(Value::String(std::move(rest)));
        break;
      }
      std::string word;
      while (i < chars.size() && !IsSpaceChar(chars[i])) word.append(chars[i++]);
      parts.push_back(Value::String(std::move(word)));
    }
    return Value::Array(std::move(parts));
  }
  if (!sep->is_string()) return Err("split: separator must be a string");
  const std::string& d = sep->as_string();
  if (d.empty()) return Err("split: empty separator");
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(d, pos);
    if (hit == std::string::npos || (max >= 0 && static_cast<int64_t>(parts.size()) >= max)) {
      parts.push_back(Value::String(s.substr(pos)));
      break;
    }
    parts.push_back(Value::String(s.substr(pos, hit - pos)));
    pos = hit + d.size();
  }
  return Value::Array(std::move(parts));
}

absl::StatusOr<bool> StartsOrEnds(const std::string& s, const std::vector<Value>& args,
                                  bool starts) {
  if (args.empty()) return Err("startswith/endswith: expected an argument");
  auto test = [&](const std::string& p) {
    if (p.size() > s.size()) return false;
    return starts ? s.compare(0, p.size(), p) == 0
                  : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  if (args[0].is_string()) return test(args[0].as_string());
  if (args[0].is_array()) {
    for (const Value& p : args[0].array()) {
      if (!p.is_string()) return Err("startswith/endswith: expected strings");
      if (test(p.as_string())) return true;
    }
    return false;
  }
  return Err("startswith/endswith: expected a string or a tuple of strings");
}

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += Utf8CharLen(s, i)) ++n;
  return n;
}

}  // namespace moe::model::jinja::internal
