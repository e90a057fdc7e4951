#include "model/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/jinja/string_ops.h"

namespace moe::model::jinja::internal {
namespace {

absl::Status Err(std::string_view what) { return absl::InvalidArgumentError(std::string(what)); }

// Argument `index` by position, else keyword `name`, else nullptr.
const Value* Arg(const std::vector<Value>& args, const Kwargs& kwargs, size_t index,
                 std::string_view name) {
  if (index < args.size()) return &args[index];
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

absl::Status CheckSize(const std::string& s, const BuiltinLimits& limits) {
  if (s.size() > limits.max_string_bytes) return Err("string exceeds the size limit");
  return absl::OkStatus();
}

// Value at a dotted attribute path ("a.b.0"), as selectattr/map/sort(attribute=) read it.
Value AttributePath(const Value& item, std::string_view path) {
  Value v = item;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string_view part =
        path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (v.is_mapping()) {
      const Value* found = v.object().Find(part);
      if (found == nullptr) return Value();
      v = *found;
    } else if (v.is_array()) {
      int64_t index = -1;
      for (char c : part) {
        if (c < '0' || c > '9' || index > (INT64_MAX / 10 - 10)) {
          index = -1;
          break;
        }
        index = (index < 0 ? 0 : index * 10) + (c - '0');
      }
      if (index < 0 || index >= static_cast<int64_t>(v.array().size())) return Value();
      v = v.array()[static_cast<size_t>(index)];
    } else {
      return Value();
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return v;
}

// Three-way comparison for sort/dictsort (numbers with numbers, strings with strings).
absl::StatusOr<int> Compare(const Value& a, const Value& b, bool case_sensitive) {
  if ((a.is_none() && b.is_none()) || (a.is_undefined() && b.is_undefined())) return 0;
  auto numeric = [](const Value& v) { return v.is_number() || v.is_bool(); };
  if (numeric(a) && numeric(b)) {
    const double x = a.is_bool() ? (a.as_bool() ? 1 : 0) : a.as_number();
    const double y = b.is_bool() ? (b.as_bool() ? 1 : 0) : b.as_number();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const std::string x = case_sensitive ? a.as_string() : AsciiLower(a.as_string());
    const std::string y = case_sensitive ? b.as_string() : AsciiLower(b.as_string());
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  return Err(absl::StrCat("cannot compare ", a.TypeName(), " with ", b.TypeName()));
}

// `items` stably sorted by key(item) under Compare (the first comparison error is returned).
template <typename Key>
absl::StatusOr<Value> SortedBy(std::vector<Value> items, bool case_sensitive, bool descending,
                               const Key& key) {
  absl::Status status;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    if (!status.ok()) return false;
    auto c = Compare(key(x), key(y), case_sensitive);
    if (!c.ok()) {
      status = c.status();
      return false;
    }
    return descending ? *c > 0 : *c < 0;
  });
  MOE_RETURN_IF_ERROR(status);
  return Value::Array(std::move(items));
}

absl::StatusOr<Value> SortArray(const Value& operand, std::vector<Value>& args, Kwargs& kwargs) {
  const Value* reverse = Arg(args, kwargs, 0, "reverse");
  const Value* case_sensitive = Arg(args, kwargs, 1, "case_sensitive");
  const Value* attribute = Arg(args, kwargs, 2, "attribute");
  std::string attr;
  if (attribute != nullptr && attribute->is_string()) attr = attribute->as_string();
  if (attribute != nullptr && attribute->is_int()) attr = std::to_string(attribute->as_int());
  const bool desc = reverse != nullptr && reverse->Truthy();
  const bool cs = case_sensitive != nullptr && case_sensitive->Truthy();
  return SortedBy(operand.array(), cs, desc,
                  [&](const Value& x) { return attr.empty() ? x : AttributePath(x, attr); });
}

absl::StatusOr<Value> ToJsonFilter(const Value& operand, std::vector<Value>& args, Kwargs& kwargs,
                                   const BuiltinLimits& limits) {
  JsonOptions options;
  if (const Value* indent = Arg(args, kwargs, 0, "indent")) {
    if (indent->is_int()) {
      options.indent = static_cast<int>(std::clamp<int64_t>(indent->as_int(), 0, 64));
    } else if (!indent->is_none()) {
      return Err("tojson: indent must be an integer");
    }
  }
  if (const Value* v = Arg(args, kwargs, 99, "ensure_ascii")) options.ensure_ascii = v->Truthy();
  if (const Value* v = Arg(args, kwargs, 99, "sort_keys")) options.sort_keys = v->Truthy();
  if (const Value* v = Arg(args, kwargs, 99, "separators")) {
    if (v->is_array() && v->array().size() == 2 && v->array()[0].is_string() &&
        v->array()[1].is_string()) {
      options.item_separator = v->array()[0].as_string();
      options.key_separator = v->array()[1].as_string();
    } else if (!v->is_none()) {
      return Err("tojson: separators must be a pair of strings");
    }
  }
  MOE_ASSIGN_OR_RETURN(std::string json, ToJson(operand, options, limits.max_string_bytes));
  return Value::String(std::move(json));
}

absl::StatusOr<Value> Join(const Value& operand, std::vector<Value>& args, Kwargs& kwargs,
                           const BuiltinLimits& limits) {
  const Value* sep = Arg(args, kwargs, 0, "d");
  if (sep == nullptr) sep = Arg(args, kwargs, 99, "separator");
  const std::string separator = sep != nullptr && sep->is_string() ? sep->as_string() : "";
  const Value* attribute = Arg(args, kwargs, 1, "attribute");
  std::string out;
  if (operand.is_string()) {
    bool first = true;
    for (std::string_view ch : Utf8Chars(operand.as_string())) {
      if (!first) out += separator;
      first = false;
      out.append(ch);
      MOE_RETURN_IF_ERROR(CheckSize(out, limits));
    }
    return Value::String(std::move(out));
  }
  if (!operand.is_array()) return Err(absl::StrCat("join: cannot join ", operand.TypeName()));
  bool first = true;
  for (const Value& item : operand.array()) {
    if (!first) out += separator;
    first = false;
    const Value v = attribute != nullptr && attribute->is_string()
                        ? AttributePath(item, attribute->as_string())
                        : item;
    if (!v.is_none() && !v.is_undefined()) out += ToOutputString(v);
    MOE_RETURN_IF_ERROR(CheckSize(out, limits));
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Indent(const Value& operand, std::vector<Value>& args, Kwargs& kwargs) {
  const Value* width = Arg(args, kwargs, 0, "width");
  const Value* first = Arg(args, kwargs, 1, "first");
  const Value* blank = Arg(args, kwargs, 2, "blank");
  std::string pad = "    ";
  if (width != nullptr && width->is_string()) pad = width->as_string();
  if (width != nullptr && width->is_int()) {
    pad.assign(static_cast<size_t>(std::clamp<int64_t>(width->as_int(), 0, 256)), ' ');
  }
  const bool indent_first = first != nullptr && first->Truthy();
  const bool indent_blank = blank != nullptr && blank->Truthy();
  const std::string& s = operand.as_string();
  std::string out;
  size_t start = 0;
  for (size_t line = 0;; ++line) {
    const size_t nl = s.find('\n', start);
    const std::string_view text =
        std::string_view(s).substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if ((line > 0 || indent_first) && (!text.empty() || indent_blank)) out += pad;
    out.append(text);
    if (nl == std::string::npos) break;
    out.push_back('\n');
    start = nl + 1;
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> SelectOrReject(std::string_view name, const Value& operand,
                                     std::vector<Value>& args) {
  if (!operand.is_array()) return Err(absl::StrCat(std::string(name), ": expected an array"));
  const bool by_attr = name == "selectattr" || name == "rejectattr";
  const bool select = name == "selectattr" || name == "select";
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (args.empty() || !args[0].is_string())
      return Err(absl::StrCat(std::string(name), ": expected a name"));
    attr = args[0].as_string();
    next = 1;
  }
  std::string test;
  if (next < args.size()) {
    if (!args[next].is_string())
      return Err(absl::StrCat(std::string(name), ": expected a test name"));
    test = args[next].as_string();
  }
  std::vector<Value> test_args(args.begin() + std::min(args.size(), next + 1), args.end());
  std::vector<Value> out;
  for (const Value& item : operand.array()) {
    const Value v = by_attr ? AttributePath(item, attr) : item;
    bool result;
    if (test.empty()) {
      result = v.Truthy();
    } else {
      MOE_ASSIGN_OR_RETURN(result, ApplyTest(test, v, test_args));
    }
    if (result == select) out.push_back(item);
  }
  return Value::Array(std::move(out));
}

absl::StatusOr<Value> MapFilter(const Value& operand, std::vector<Value>& args, Kwargs& kwargs,
                                const BuiltinLimits& limits) {
  if (!operand.is_array()) return Err("map: expected an array");
  std::vector<Value> out;
  if (const Value* attribute = Arg(args, kwargs, 99, "attribute")) {
    const std::string attr =
        attribute->is_int() ? std::to_string(attribute->as_int()) : ToOutputString(*attribute);
    const Value* def = Arg(args, kwargs, 99, "default");
    for (const Value& item : operand.array()) {
      Value v = AttributePath(item, attr);
      if (v.is_undefined() && def != nullptr) v = *def;
      out.push_back(std::move(v));
    }
    return Value::Array(std::move(out));
  }
  if (args.empty() || !args[0].is_string()) return Err("map: expected a filter name or attribute=");
  const std::string filter = args[0].as_string();
  std::vector<Value> rest(args.begin() + 1, args.end());
  Kwargs no_kwargs;
  for (const Value& item : operand.array()) {
    std::vector<Value> call_args = rest;
    MOE_ASSIGN_OR_RETURN(Value v, ApplyFilter(filter, item, call_args, no_kwargs, limits));
    out.push_back(std::move(v));
  }
  return Value::Array(std::move(out));
}

Value Items(const Value& mapping) {
  std::vector<Value> items;
  for (const auto& [k, v] : mapping.object().items()) {
    items.push_back(Value::Array({Value::String(k), v}));
  }
  return Value::Array(std::move(items));
}

absl::StatusOr<Value> DictSort(const Value& operand, std::vector<Value>& args, Kwargs& kwargs) {
  if (!operand.is_mapping()) return Err("dictsort: expected a mapping");
  const Value* case_sensitive = Arg(args, kwargs, 0, "case_sensitive");
  const Value* by = Arg(args, kwargs, 1, "by");
  const Value* reverse = Arg(args, kwargs, 2, "reverse");
  const size_t index = by != nullptr && by->is_string() && by->as_string() == "value" ? 1 : 0;
  const bool cs = case_sensitive != nullptr && case_sensitive->Truthy();
  const bool desc = reverse != nullptr && reverse->Truthy();
  return SortedBy(Items(operand).array(), cs, desc,
                  [index](const Value& item) { return item.array()[index]; });
}

// Python int()/float() of a string: surrounding whitespace allowed, nothing else.
bool ParseNumber(const std::string& s, bool integer, double* out) {
  const std::string t = StripChars(s, nullptr, true, true);
  if (t.empty()) return false;
  char* end = nullptr;
  if (integer) {
    const long long v = std::strtoll(t.c_str(), &end, 10);
    if (end != t.c_str() + t.size()) return false;
    *out = static_cast<double>(v);
    return true;
  }
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return false;
  *out = v;
  return true;
}

absl::StatusOr<Value> ToNumber(bool integer, const Value& operand, std::vector<Value>& args,
                               Kwargs& kwargs) {
  const Value* def = Arg(args, kwargs, 0, "default");
  const Value fallback = def != nullptr ? *def : (integer ? Value::Int(0) : Value::Float(0));
  if (operand.is_int())
    return integer ? operand : Value::Float(static_cast<double>(operand.as_int()));
  if (operand.is_float()) {
    if (!integer) return operand;
    const double t = std::trunc(operand.as_float());
    if (!std::isfinite(t) || std::fabs(t) > 9.2e18) return fallback;
    return Value::Int(static_cast<int64_t>(t));
  }
  if (operand.is_bool()) {
    return integer ? Value::Int(operand.as_bool() ? 1 : 0)
                   : Value::Float(operand.as_bool() ? 1.0 : 0.0);
  }
  if (operand.is_string()) {
    double v = 0;
    if (!ParseNumber(operand.as_string(), integer, &v)) {
      // "3.7" | int is 3 in Jinja: fall back to the float parse and truncate.
      if (!integer || !ParseNumber(operand.as_string(), false, &v)) return fallback;
      v = std::trunc(v);
      if (!std::isfinite(v) || std::fabs(v) > 9.2e18) return fallback;
    }
    if (integer) return Value::Int(static_cast<int64_t>(v));
    return Value::Float(v);
  }
  return fallback;
}

Value Reverse(const Value& operand) {
  if (operand.is_string()) {
    std::vector<std::string_view> chars = Utf8Chars(operand.as_string());
    std::string out;
    for (auto it = chars.rbegin(); it != chars.rend(); ++it) out.append(*it);
    return Value::String(std::move(out));
  }
  std::vector<Value> items = operand.array();
  std::reverse(items.begin(), items.end());
  return Value::Array(std::move(items));
}

// s.replace(old, new[, count]) and the replace filter.
absl::StatusOr<Value> Replace(const std::string& s, const std::vector<Value>& args,
                              const Kwargs& kwargs, const BuiltinLimits& limits) {
  if (args.size() < 2 || !args[0].is_string() || !args[1].is_string()) {
    return Err("replace: expected two strings");
  }
  const Value* count = Arg(args, kwargs, 2, "count");
  std::string out = ReplaceAll(s, args[0].as_string(), args[1].as_string(),
                               count != nullptr && count->is_int() ? count->as_int() : -1);
  MOE_RETURN_IF_ERROR(CheckSize(out, limits));
  return Value::String(std::move(out));
}

Value StringToList(const std::string& s) {
  std::vector<Value> items;
  for (std::string_view ch : Utf8Chars(s)) items.push_back(Value::String(std::string(ch)));
  return Value::Array(std::move(items));
}

Value StringMethod(const Value& self, std::string_view name, const BuiltinLimits& limits) {
  const std::string s = self.as_string();
  auto fn = [](auto f) { return Value::Function(std::move(f)); };
  if (name == "upper")
    return fn([s](auto&, auto&) -> absl::StatusOr<Value> { return Value::String(AsciiUpper(s)); });
  if (name == "lower")
    return fn([s](auto&, auto&) -> absl::StatusOr<Value> { return Value::String(AsciiLower(s)); });
  if (name == "title")
    return fn([s](auto&, auto&) -> absl::StatusOr<Value> { return Value::String(TitleCase(s)); });
  if (name == "capitalize")
    return fn([s](auto&, auto&) -> absl::StatusOr<Value> { return Value::String(Capitalize(s)); });
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip";
    const bool right = name != "lstrip";
    return fn([s, left, right](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
      return Value::String(StripChars(s, args.empty() ? nullptr : &args[0], left, right));
    });
  }
  if (name == "startswith" || name == "endswith") {
    const bool starts = name == "startswith";
    return fn([s, starts](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
      MOE_ASSIGN_OR_RETURN(bool r, StartsOrEnds(s, args, starts));
      return Value::Bool(r);
    });
  }
  if (name == "split") {
    return fn([s](std::vector<Value>& args, Kwargs& kwargs) -> absl::StatusOr<Value> {
      return Split(s, Arg(args, kwargs, 0, "sep"), Arg(args, kwargs, 1, "maxsplit"));
    });
  }
  if (name == "replace") {
    return fn([s, limits](std::vector<Value>& args, Kwargs& kwargs) -> absl::StatusOr<Value> {
      return Replace(s, args, kwargs, limits);
    });
  }
  if (name == "join") {
    return fn([s, limits](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
      if (args.empty()) return Err("join: expected an iterable");
      std::vector<Value> sep_args = {Value::String(s)};
      Kwargs none;
      return Join(args[0], sep_args, none, limits);
    });
  }
  if (name == "find") {
    return fn([s](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
      if (args.empty() || !args[0].is_string()) return Err("find: expected a string");
      const size_t hit = s.find(args[0].as_string());
      return Value::Int(hit == std::string::npos
                            ? -1
                            : static_cast<int64_t>(Utf8Length(std::string_view(s).substr(0, hit))));
    });
  }
  if (name == "count") {
    return fn([s](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
      if (args.empty() || !args[0].is_string() || args[0].as_string().empty()) {
        return Err("count: expected a non-empty string");
      }
      int64_t n = 0;
      for (size_t p = s.find(args[0].as_string()); p != std::string::npos;
           p = s.find(args[0].as_string(), p + args[0].as_string().size())) {
        ++n;
      }
      return Value::Int(n);
    });
  }
  if (name == "length") return Value::Int(static_cast<int64_t>(Utf8Length(s)));
  return Value();
}

Value ObjectMethod(const Value& self, std::string_view name) {
  auto fn = [](auto f) { return Value::Function(std::move(f)); };
  if (name == "get") {
    return fn([self](std::vector<Value>& args, Kwargs& kwargs) -> absl::StatusOr<Value> {
      if (args.empty() || !args[0].is_string()) return Err("get: the key must be a string");
      if (const Value* v = self.object().Find(args[0].as_string())) return *v;
      const Value* def = Arg(args, kwargs, 1, "default");
      return def != nullptr ? *def : Value::None();
    });
  }
  if (name == "items") {
    return fn([self](auto&, auto&) -> absl::StatusOr<Value> { return Items(self); });
  }
  if (name == "keys" || name == "values") {
    const bool keys = name == "keys";
    return fn([self, keys](auto&, auto&) -> absl::StatusOr<Value> {
      std::vector<Value> out;
      for (const auto& [k, v] : self.object().items()) {
        out.push_back(keys ? Value::String(k) : v);
      }
      return Value::Array(std::move(out));
    });
  }
  return Value();
}

Value ArrayMethod(const Value& self, std::string_view name, const BuiltinLimits& limits) {
  if (name == "length") return Value::Int(static_cast<int64_t>(self.array().size()));
  return Value();
}

}  // namespace

bool StrictEquals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.as_number() == b.as_number();
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kBool:
      return a.as_bool() == b.as_bool();
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    default:
      return a.SameContainer(b);
  }
}

bool LooseEquals(const Value& a, const Value& b) {
  const bool a_nil = a.is_none() || a.is_undefined();
  const bool b_nil = b.is_none() || b.is_undefined();
  if (a_nil || b_nil) return a_nil && b_nil;
  if (a.kind() == b.kind() || (a.is_number() && b.is_number())) return StrictEquals(a, b);
  // Mixed primitives compare as numbers (JavaScript ==).
  auto to_number = [](const Value& v, double* out) {
    if (v.is_number()) {
      *out = v.as_number();
      return true;
    }
    if (v.is_bool()) {
      *out = v.as_bool() ? 1 : 0;
      return true;
    }
    if (v.is_string()) {
      const std::string t = StripChars(v.as_string(), nullptr, true, true);
      if (t.empty()) {
        *out = 0;
        return true;
      }
      char* end = nullptr;
      *out = std::strtod(t.c_str(), &end);
      return end == t.c_str() + t.size();
    }
    return false;
  };
  double x = 0;
  double y = 0;
  return to_number(a, &x) && to_number(b, &y) && x == y;
}

Value GetIndex(const Value& object, int64_t index) {
  if (object.is_array()) {
    const int64_t n = static_cast<int64_t>(object.array().size());
    if (index < 0) index += n;
    if (index < 0 || index >= n) return Value();
    return object.array()[static_cast<size_t>(index)];
  }
  if (object.is_string()) {
    std::vector<std::string_view> chars = Utf8Chars(object.as_string());
    const int64_t n = static_cast<int64_t>(chars.size());
    if (index < 0) index += n;
    if (index < 0 || index >= n) return Value();
    return Value::String(std::string(chars[static_cast<size_t>(index)]));
  }
  return Value();
}

absl::StatusOr<Value> Slice(const Value& object, const Value& start_v, const Value& stop_v,
                            const Value& step_v) {
  if (!object.is_array() && !object.is_string()) {
    return Err(absl::StrCat("cannot slice ", object.TypeName()));
  }
  for (const Value* v : {&start_v, &stop_v, &step_v}) {
    if (!v->is_int() && !v->is_undefined() && !v->is_none()) {
      return Err("slice indices must be integers");
    }
  }
  std::vector<std::string_view> chars;
  int64_t n;
  if (object.is_string()) {
    chars = Utf8Chars(object.as_string());
    n = static_cast<int64_t>(chars.size());
  } else {
    n = static_cast<int64_t>(object.array().size());
  }
  const int64_t step = step_v.is_int() ? step_v.as_int() : 1;
  if (step == 0) return Err("slice step cannot be zero");
  int64_t start;
  int64_t stop;
  if (step > 0) {
    start = start_v.is_int() ? start_v.as_int() : 0;
    stop = stop_v.is_int() ? stop_v.as_int() : n;
    start = start < 0 ? std::max<int64_t>(n + start, 0) : std::min(start, n);
    stop = stop < 0 ? std::max<int64_t>(n + stop, 0) : std::min(stop, n);
  } else {
    start = start_v.is_int() ? start_v.as_int() : n - 1;
    stop = stop_v.is_int() ? stop_v.as_int() : -1 - n;
    start = start < 0 ? std::max<int64_t>(n + start, -1) : std::min(start, n - 1);
    stop = stop < 0 ? std::max<int64_t>(n + stop, -1) : std::min(stop, n - 1);
  }
  std::vector<Value> items;
  std::string text;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (object.is_string()) {
      text.append(chars[static_cast<size_t>(i)]);
    } else {
      items.push_back(object.array()[static_cast<size_t>(i)]);
    }
  }
  if (object.is_string()) return Value::String(std::move(text));
  return Value::Array(std::move(items));
}

Value GetAttribute(const Value& object, std::string_view name, const BuiltinLimits& limits) {
  if (object.is_mapping()) {
    if (const Value* v = object.object().Find(name)) return *v;
    if (object.is_object()) return ObjectMethod(object, name);
    return Value();
  }
  if (object.is_string()) return StringMethod(object, name, limits);
  if (object.is_array()) return ArrayMethod(object, name, limits);
  return Value();
}

absl::StatusOr<Value> ApplyFilter(std::string_view name, const Value& operand,
                                  std::vector<Value>& args, Kwargs& kwargs,
                                  const BuiltinLimits& limits) {
  if (name == "safe") return operand;
  if (name == "tojson") return ToJsonFilter(operand, args, kwargs, limits);
  if (name == "default" || name == "d") {
    const Value* def = Arg(args, kwargs, 0, "default_value");
    const Value* boolean = Arg(args, kwargs, 1, "boolean");
    const bool use_default =
        operand.is_undefined() || (boolean != nullptr && boolean->Truthy() && !operand.Truthy());
    if (!use_default) return operand;
    return def != nullptr ? *def : Value::String("");
  }
  if (name == "string") {
    if (operand.is_string()) return operand;
    if (operand.is_undefined()) return Value::String("");
    return Value::String(ToOutputString(operand));
  }
  if (name == "int" || name == "float") return ToNumber(name == "int", operand, args, kwargs);
  if (name == "length" || name == "count") {
    if (operand.is_string())
      return Value::Int(static_cast<int64_t>(Utf8Length(operand.as_string())));
    if (operand.is_array()) return Value::Int(static_cast<int64_t>(operand.array().size()));
    if (operand.is_mapping()) return Value::Int(static_cast<int64_t>(operand.object().size()));
    if (operand.is_undefined()) return Value::Int(0);
    return Err(absl::StrCat("length: ", operand.TypeName(), " has no length"));
  }
  if (name == "join") return Join(operand, args, kwargs, limits);
  if (name == "map") return MapFilter(operand, args, kwargs, limits);
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    return SelectOrReject(name, operand, args);
  }
  if (name == "items") {
    if (operand.is_mapping()) return Items(operand);
    if (operand.is_undefined()) return Value::Array();
    return Err(absl::StrCat("items: expected a mapping, got ", operand.TypeName()));
  }
  if (name == "dictsort") return DictSort(operand, args, kwargs);
  if (name == "list") {
    if (operand.is_array()) return operand;
    if (operand.is_string()) return StringToList(operand.as_string());
    if (operand.is_mapping()) {
      std::vector<Value> keys;
      for (const auto& [k, v] : operand.object().items()) keys.push_back(Value::String(k));
      return Value::Array(std::move(keys));
    }
    return Err(absl::StrCat("list: ", operand.TypeName(), " is not iterable"));
  }
  if (name == "first" || name == "last") {
    if (operand.is_array() || operand.is_string()) {
      return GetIndex(operand, name == "first" ? 0 : -1);
    }
    return Err(absl::StrCat(std::string(name), ": expected a sequence, got ", operand.TypeName()));
  }
  if (name == "reverse") {
    if (operand.is_array() || operand.is_string()) return Reverse(operand);
    return Err("reverse: expected a sequence");
  }
  if (name == "sort") {
    if (!operand.is_array()) return Err("sort: expected an array");
    return SortArray(operand, args, kwargs);
  }
  if (name == "unique") {
    if (!operand.is_array()) return Err("unique: expected an array");
    std::vector<Value> out;
    for (const Value& item : operand.array()) {
      bool seen = false;
      for (const Value& o : out) seen = seen || StrictEquals(o, item);
      if (!seen) out.push_back(item);
    }
    return Value::Array(std::move(out));
  }
  if (name == "abs") {
    if (operand.is_int()) {
      if (operand.as_int() == INT64_MIN) return Err("abs: integer overflow");
      return Value::Int(std::llabs(operand.as_int()));
    }
    if (operand.is_float()) return Value::Float(std::fabs(operand.as_float()));
    return Err("abs: expected a number");
  }
  if (name == "round") {
    if (!operand.is_number()) return Err("round: expected a number");
    const Value* precision = Arg(args, kwargs, 0, "precision");
    const int64_t p = precision != nullptr && precision->is_int()
                          ? std::clamp<int64_t>(precision->as_int(), 0, 15)
                          : 0;
    const double scale = std::pow(10.0, static_cast<double>(p));
    return Value::Float(std::round(operand.as_number() * scale) / scale);
  }
  if (name == "bool") return Value::Bool(operand.Truthy());
  if (operand.is_string()) {
    const std::string& s = operand.as_string();
    if (name == "trim") {
      return Value::String(StripChars(s, args.empty() ? nullptr : &args[0], true, true));
    }
    if (name == "upper") return Value::String(AsciiUpper(s));
    if (name == "lower") return Value::String(AsciiLower(s));
    if (name == "title") return Value::String(TitleCase(s));
    if (name == "capitalize") return Value::String(Capitalize(s));
    if (name == "escape" || name == "e") return Value::String(HtmlEscape(s));
    if (name == "indent") return Indent(operand, args, kwargs);
    if (name == "replace") {
      return Replace(s, args, kwargs, limits);
    }
    if (name == "wordcount") {
      MOE_ASSIGN_OR_RETURN(Value words, Split(s, nullptr, nullptr));
      return Value::Int(static_cast<int64_t>(words.array().size()));
    }
  }
  if (operand.is_mapping() && operand.is_object()) {
    Value method = ObjectMethod(operand, name);
    if (method.is_function()) return method.function()(args, kwargs);
  }
  if (name == "escape" || name == "e") return Value::String(HtmlEscape(ToOutputString(operand)));
  return Err(absl::StrCat("unknown filter '", std::string(name), "' for ", operand.TypeName()));
}

absl::StatusOr<bool> ApplyTest(std::string_view name, const Value& v,
                               const std::vector<Value>& args) {
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "mapping") return v.is_object();
  if (name == "iterable") return v.is_array() || v.is_string() || v.is_object();
  if (name == "sequence") return v.is_array() || v.is_string() || v.is_object();
  if (name == "callable") return v.is_function();
  if (name == "lower") return v.is_string() && v.as_string() == AsciiLower(v.as_string());
  if (name == "upper") return v.is_string() && v.as_string() == AsciiUpper(v.as_string());
  if (name == "odd" || name == "even") {
    if (!v.is_int()) return Err(absl::StrCat(std::string(name), ": expected an integer"));
    const bool odd = (v.as_int() % 2) != 0;
    return name == "odd" ? odd : !odd;
  }
  if (name == "divisibleby") {
    if (!v.is_int() || args.empty() || !args[0].is_int() || args[0].as_int() == 0) {
      return Err("divisibleby: expected integers");
    }
    return v.as_int() % args[0].as_int() == 0;
  }
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas" || name == "ne" ||
      name == "!=") {
    if (args.empty()) return Err(absl::StrCat(std::string(name), ": expected an argument"));
    const bool eq = name == "sameas" ? StrictEquals(v, args[0]) : LooseEquals(v, args[0]);
    return (name == "ne" || name == "!=") ? !eq : eq;
  }
  if (name == "gt" || name == "ge" || name == "lt" || name == "le" || name == "greaterthan" ||
      name == "lessthan") {
    if (args.empty() || !v.is_number() || !args[0].is_number()) {
      return Err(absl::StrCat(std::string(name), ": expected numbers"));
    }
    const double x = v.as_number();
    const double y = args[0].as_number();
    if (name == "gt" || name == "greaterthan") return x > y;
    if (name == "ge") return x >= y;
    if (name == "lt" || name == "lessthan") return x < y;
    return x <= y;
  }
  if (name == "in") {
    if (args.empty()) return Err("in: expected an argument");
    const Value& c = args[0];
    if (c.is_array()) {
      for (const Value& item : c.array()) {
        if (StrictEquals(item, v)) return true;
      }
      return false;
    }
    if (c.is_string() && v.is_string())
      return c.as_string().find(v.as_string()) != std::string::npos;
    if (c.is_mapping() && v.is_string()) return c.object().Find(v.as_string()) != nullptr;
    return false;
  }
  return Err(absl::StrCat("unknown test '", std::string(name), "'"));
}

}  // namespace moe::model::jinja::internal
