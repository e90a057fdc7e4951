#include "model/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe::model::jinja {

const Value* ObjectData::Find(std::string_view key) const {
  for (const auto& [k, v] : items_) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value* ObjectData::Find(std::string_view key) {
  for (auto& [k, v] : items_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void ObjectData::Set(std::string key, Value value) {
  if (Value* existing = Find(key)) {
    *existing = std::move(value);
    return;
  }
  items_.emplace_back(std::move(key), std::move(value));
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::move(s);
  return v;
}

Value Value::Array(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::kArray;
  v.array_ = std::make_shared<std::vector<Value>>(std::move(items));
  return v;
}

Value Value::Object() {
  Value v;
  v.kind_ = Kind::kObject;
  v.object_ = std::make_shared<ObjectData>();
  return v;
}

Value Value::Namespace() {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.object_ = std::make_shared<ObjectData>();
  return v;
}

Value Value::Function(NativeFunction fn) {
  Value v;
  v.kind_ = Kind::kFunction;
  v.function_ = std::make_shared<NativeFunction>(std::move(fn));
  return v;
}

namespace {

template <typename Json>
Value FromJsonImpl(const Json& json) {
  switch (json.type()) {
    case nlohmann::json::value_t::null:
      return Value::None();
    case nlohmann::json::value_t::boolean:
      return Value::Bool(json.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::Int(json.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = json.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::Float(static_cast<double>(u));
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::Float(json.template get<double>());
    case nlohmann::json::value_t::string:
      return Value::String(json.template get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJsonImpl(item));
      return Value::Array(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value object = Value::Object();
      for (auto it = json.begin(); it != json.end(); ++it) {
        object.object().Set(it.key(), FromJsonImpl(it.value()));
      }
      return object;
    }
    default:  // binary, discarded
      return Value();
  }
}

// Appends `s` as a JSON string literal the way JSON.stringify / json.dumps write it.
void AppendJsonString(std::string_view s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out->append("\\\"");
        continue;
      case '\\':
        out->append("\\\\");
        continue;
      case '\b':
        out->append("\\b");
        continue;
      case '\f':
        out->append("\\f");
        continue;
      case '\n':
        out->append("\\n");
        continue;
      case '\r':
        out->append("\\r");
        continue;
      case '\t':
        out->append("\\t");
        continue;
      default:
        break;
    }
    char buf[16];
    if (c < 0x20) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out->append(buf);
      continue;
    }
    if (!ensure_ascii || c < 0x80) {
      out->push_back(static_cast<char>(c));
      continue;
    }
    // Decode one UTF-8 sequence; invalid bytes are escaped as U+FFFD.
    uint32_t cp = 0xFFFD;
    size_t len = 1;
    if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) {
      cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
      len = 2;
    } else if ((c & 0xF0) == 0xE0 && i + 2 < s.size()) {
      cp = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
      len = 3;
    } else if ((c & 0xF8) == 0xF0 && i + 3 < s.size()) {
      cp = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
           (s[i + 3] & 0x3F);
      len = 4;
    }
    i += len - 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
    } else {
      std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
    }
    out->append(buf);
  }
  out->push_back('"');
}

std::string FormatJsonFloat(double f) {
  // Python's json.dumps writes repr(float): "1.0", "0.5", "1e-07", "1e+16".
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  const double a = std::fabs(f);
  if (a != 0 && (a >= 1e16 || a < 1e-4)) {
    auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
    std::string s(buf, res.ptr);
    // to_chars writes "1e+16" / "1e-07" like Python already.
    return s;
  }
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::fixed);
  std::string s(buf, res.ptr);
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

class JsonWriter {
 public:
  JsonWriter(const JsonOptions& options, size_t max_bytes)
      : options_(options), max_bytes_(max_bytes) {
    if (!options.item_separator.empty() || !options.key_separator.empty()) {
      item_sep_ = options.item_separator;
      key_sep_ = options.key_separator;
    } else {
      item_sep_ = options.indent > 0 ? "," : ", ";
      key_sep_ = ": ";
    }
  }

  absl::Status Write(const Value& v, int depth, std::string* out) {
    if (out->size() > max_bytes_) {
      return absl::InvalidArgumentError("tojson: output exceeds the size limit");
    }
    if (depth > 512) return absl::InvalidArgumentError("tojson: value nested too deeply");
    switch (v.kind()) {
      case Value::Kind::kUndefined:
        out->append(options_.undefined_as_null ? "null" : "undefined");
        return absl::OkStatus();
      case Value::Kind::kNone:
        out->append("null");
        return absl::OkStatus();
      case Value::Kind::kBool:
        out->append(v.as_bool() ? "true" : "false");
        return absl::OkStatus();
      case Value::Kind::kInt:
        out->append(std::to_string(v.as_int()));
        return absl::OkStatus();
      case Value::Kind::kFloat:
        out->append(FormatJsonFloat(v.as_float()));
        return absl::OkStatus();
      case Value::Kind::kString:
        AppendJsonString(v.as_string(), options_.ensure_ascii, out);
        return absl::OkStatus();
      case Value::Kind::kArray: {
        const auto& items = v.array();
        if (items.empty()) {
          out->append("[]");
          return absl::OkStatus();
        }
        out->push_back('[');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i > 0) out->append(item_sep_);
          Newline(depth + 1, out);
          auto status = Write(items[i], depth + 1, out);
          if (!status.ok()) return status;
        }
        Newline(depth, out);
        out->push_back(']');
        return absl::OkStatus();
      }
      case Value::Kind::kObject:
      case Value::Kind::kNamespace: {
        std::vector<const std::pair<std::string, Value>*> entries;
        for (const auto& item : v.object().items()) entries.push_back(&item);
        if (entries.empty()) {
          out->append("{}");
          return absl::OkStatus();
        }
        if (options_.sort_keys) {
          std::stable_sort(entries.begin(), entries.end(),
                           [](const auto* a, const auto* b) { return a->first < b->first; });
        }
        out->push_back('{');
        for (size_t i = 0; i < entries.size(); ++i) {
          if (i > 0) out->append(item_sep_);
          Newline(depth + 1, out);
          AppendJsonString(entries[i]->first, options_.ensure_ascii, out);
          out->append(key_sep_);
          auto status = Write(entries[i]->second, depth + 1, out);
          if (!status.ok()) return status;
        }
        Newline(depth, out);
        out->push_back('}');
        return absl::OkStatus();
      }
      case Value::Kind::kFunction:
        return absl::InvalidArgumentError("tojson: cannot serialize a function");
    }
    return absl::InvalidArgumentError("tojson: unknown value");
  }

 private:
  void Newline(int depth, std::string* out) {
    if (options_.indent <= 0) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(options_.indent) * depth, ' ');
  }

  const JsonOptions& options_;
  size_t max_bytes_;
  std::string item_sep_;
  std::string key_sep_;
};

}  // namespace

Value Value::FromJson(const nlohmann::json& json) { return FromJsonImpl(json); }
Value Value::FromJson(const nlohmann::ordered_json& json) { return FromJsonImpl(json); }

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0 && !std::isnan(f_);
    case Kind::kString:
      return !s_.empty();
    case Kind::kArray:
      return !array_->empty();
    case Kind::kObject:
      return object_->size() > 0;
    case Kind::kNamespace:
    case Kind::kFunction:
      return true;
  }
  return false;
}

bool Value::SameContainer(const Value& other) const {
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::kArray:
      return array_ == other.array_;
    case Kind::kObject:
    case Kind::kNamespace:
      return object_ == other.object_;
    case Kind::kFunction:
      return function_ == other.function_;
    default:
      return false;
  }
}

const char* Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "undefined";
    case Kind::kNone:
      return "none";
    case Kind::kBool:
      return "boolean";
    case Kind::kInt:
      return "integer";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "string";
    case Kind::kArray:
      return "array";
    case Kind::kObject:
      return "object";
    case Kind::kNamespace:
      return "namespace";
    case Kind::kFunction:
      return "function";
  }
  return "?";
}

std::string FormatFloat(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  const double a = std::fabs(f);
  char buf[64];
  if (a >= 1e21 || a < 1e-6) {
    // JavaScript's Number#toString: "1e+21", "1.5e-7".
    auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
    std::string s(buf, res.ptr);
    const size_t e = s.find('e');
    if (e != std::string::npos && e + 2 < s.size() && s[e + 2] == '0') s.erase(e + 2, 1);
    return s;
  }
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::fixed);
  std::string s(buf, res.ptr);
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

std::string ToOutputString(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "null";
    case Value::Kind::kBool:
      return value.as_bool() ? "true" : "false";
    case Value::Kind::kInt:
      return std::to_string(value.as_int());
    case Value::Kind::kFloat:
      return FormatFloat(value.as_float());
    case Value::Kind::kString:
      return value.as_string();
    case Value::Kind::kArray:
    case Value::Kind::kObject:
    case Value::Kind::kNamespace: {
      JsonOptions options;
      options.undefined_as_null = false;
      auto json = ToJson(value, options, size_t{64} << 20);
      return json.ok() ? *json : std::string();
    }
    case Value::Kind::kFunction:
      return "[function]";
  }
  return "";
}

absl::StatusOr<std::string> ToJson(const Value& value, const JsonOptions& options,
                                   size_t max_bytes) {
  std::string out;
  JsonWriter writer(options, max_bytes);
  auto status = writer.Write(value, 0, &out);
  if (!status.ok()) return status;
  if (out.size() > max_bytes) {
    return absl::InvalidArgumentError("tojson: output exceeds the size limit");
  }
  return out;
}

}  // namespace moe::model::jinja
