// Built-in filters, tests, methods of strings/objects/arrays and global functions of the Jinja
// interpreter. Internal to model/jinja (template.h is the public interface).
#ifndef MOE_MODEL_JINJA_BUILTINS_H_
#define MOE_MODEL_JINJA_BUILTINS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/jinja/value.h"

namespace moe::model::jinja::internal {

// Bounds on what one builtin call may produce.
struct BuiltinLimits {
  size_t max_string_bytes;  // any string a builtin builds
  int64_t max_items;        // arrays built by range() and friends
};

// `value | name(args, kwargs)`. INVALID_ARGUMENT for an unknown filter or bad operand types.
absl::StatusOr<Value> ApplyFilter(std::string_view name, const Value& operand,
                                  std::vector<Value>& args, Kwargs& kwargs,
                                  const BuiltinLimits& limits);

// `value is name(args)`. INVALID_ARGUMENT for an unknown test.
absl::StatusOr<bool> ApplyTest(std::string_view name, const Value& operand,
                               const std::vector<Value>& args);

// `object.name`: a key of an object or namespace, else a builtin method bound to `object`
// (str.strip, dict.items, ...), else undefined.
Value GetAttribute(const Value& object, std::string_view name, const BuiltinLimits& limits);

// `object[index]` for arrays and strings (negative indices count from the end), or undefined.
Value GetIndex(const Value& object, int64_t index);

// `object[start:stop:step]` for arrays and strings (Python slice semantics).
absl::StatusOr<Value> Slice(const Value& object, const Value& start, const Value& stop,
                            const Value& step);

// == as @huggingface/jinja evaluates it (numbers, strings and booleans by value, none equals
// undefined, containers by identity).
bool LooseEquals(const Value& a, const Value& b);
// `in` membership and the equalto test: primitives by value, containers by identity.
bool StrictEquals(const Value& a, const Value& b);

// The global functions every template sees: range, namespace, strftime_now. (raise_exception
// lives in the interpreter, which gives its error a distinct status.)
Value MakeRange(const BuiltinLimits& limits);
// Every namespace the function creates is appended to `created`, which must outlive the
// render: the interpreter empties them at the end to break reference cycles
// (`{% set ns.self = ns %}`).
Value MakeNamespaceFunction(std::vector<Value>* created);
Value MakeStrftimeNow();

}  // namespace moe::model::jinja::internal

#endif  // MOE_MODEL_JINJA_BUILTINS_H_
