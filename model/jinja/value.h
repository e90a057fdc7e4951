// Runtime values of the Jinja interpreter: undefined, none, bool, int, float, string, array,
// object (insertion-ordered), namespace (mutable attribute bag) and callable. Arrays, objects and
// namespaces have reference semantics (copies share the container), as in Python and JavaScript;
// everything else is a plain value. Not thread-safe: a value graph belongs to one Render call.
#ifndef MOE_MODEL_JINJA_VALUE_H_
#define MOE_MODEL_JINJA_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moe::model::jinja {

class Value;

// Keyword arguments of a call, in call order.
using Kwargs = std::vector<std::pair<std::string, Value>>;

// A built-in function, bound method or macro. `args` are the positional arguments.
using NativeFunction =
    std::function<absl::StatusOr<Value>(std::vector<Value>& args, Kwargs& kwargs)>;

// An insertion-ordered string-keyed map (JSON objects keep their key order).
class ObjectData {
 public:
  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  void Set(std::string key, Value value);
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  void Clear() { items_.clear(); }

 private:
  std::vector<std::pair<std::string, Value>> items_;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kArray,
    kObject,
    kNamespace,
    kFunction,
  };

  Value() = default;  // undefined
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value Array(std::vector<Value> items = {});
  static Value Object();
  static Value Namespace();
  static Value Function(NativeFunction fn);
  // JSON -> Value. Objects keep the key order of `json` (nlohmann::json sorts keys,
  // nlohmann::ordered_json keeps the document order).
  static Value FromJson(const nlohmann::json& json);
  static Value FromJson(const nlohmann::ordered_json& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  // Objects and namespaces: attribute containers.
  bool is_mapping() const { return kind_ == Kind::kObject || kind_ == Kind::kNamespace; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_float() const { return f_; }
  double as_number() const { return kind_ == Kind::kInt ? static_cast<double>(i_) : f_; }
  const std::string& as_string() const { return s_; }
  std::vector<Value>& array() const { return *array_; }
  ObjectData& object() const { return *object_; }
  const NativeFunction& function() const { return *function_; }

  // Python truthiness: empty strings, containers, 0, none and undefined are false.
  bool Truthy() const;
  // Same container (arrays, objects, namespaces, functions compare by identity).
  bool SameContainer(const Value& other) const;
  const char* TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<std::vector<Value>> array_;
  std::shared_ptr<ObjectData> object_;
  std::shared_ptr<NativeFunction> function_;
};

// How {{ value }} prints: as @huggingface/jinja does (undefined and none print nothing at the
// top level, which the caller handles; booleans print "true"/"false"; floats with an integral
// value print "2.0"; arrays and objects print as JSON with ", " and ": " separators).
std::string ToOutputString(const Value& value);

struct JsonOptions {
  int indent = 0;  // 0: single line
  bool ensure_ascii = false;
  bool sort_keys = false;
  // Empty: ", " and ": " (or "," and ": " when indenting), as Python's json.dumps.
  std::string item_separator;
  std::string key_separator;
  bool undefined_as_null = true;  // false: undefined prints as `undefined` (value printing)
};

// JSON text of `value` as Python's json.dumps (ensure_ascii=False by default) writes it.
// INVALID_ARGUMENT for functions; `max_bytes` bounds the output.
absl::StatusOr<std::string> ToJson(const Value& value, const JsonOptions& options,
                                   size_t max_bytes);

// Formats a double as @huggingface/jinja prints floats ("2.0", "0.5", "1e+21").
std::string FormatFloat(double f);

}  // namespace moe::model::jinja

#endif  // MOE_MODEL_JINJA_VALUE_H_
