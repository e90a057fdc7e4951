// The global functions every template sees (builtins.h): range, namespace, strftime_now.
#include <cstdint>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/jinja/builtins.h"

namespace moe::model::jinja::internal {
namespace {

absl::Status Err(std::string_view what) { return absl::InvalidArgumentError(std::string(what)); }

}  // namespace

Value MakeRange(const BuiltinLimits& limits) {
  return Value::Function([limits](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
    if (args.empty() || args.size() > 3) return Err("range: expected 1 to 3 arguments");
    for (const Value& a : args) {
      if (!a.is_int()) return Err("range: arguments must be integers");
    }
    int64_t start = 0;
    int64_t stop = args[0].as_int();
    int64_t step = 1;
    if (args.size() >= 2) {
      start = args[0].as_int();
      stop = args[1].as_int();
    }
    if (args.size() == 3) step = args[2].as_int();
    if (step == 0) return Err("range: step must not be zero");
    std::vector<Value> items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      if (static_cast<int64_t>(items.size()) >= limits.max_items) {
        return Err("range: too many items");
      }
      items.push_back(Value::Int(i));
      if (__builtin_add_overflow(i, step, &i)) break;
    }
    return Value::Array(std::move(items));
  });
}

Value MakeNamespaceFunction(std::vector<Value>* created) {
  return Value::Function(
      [created](std::vector<Value>& args, Kwargs& kwargs) -> absl::StatusOr<Value> {
        Value ns = Value::Namespace();
        created->push_back(ns);
        if (args.size() > 1) return Err("namespace: expected at most one positional argument");
        if (args.size() == 1) {
          if (args[0].is_mapping()) {
            for (const auto& [k, v] : args[0].object().items()) ns.object().Set(k, v);
          } else if (args[0].is_array()) {
            for (const Value& pair : args[0].array()) {
              if (!pair.is_array() || pair.array().size() != 2 || !pair.array()[0].is_string()) {
                return Err("namespace: expected [key, value] pairs");
              }
              ns.object().Set(pair.array()[0].as_string(), pair.array()[1]);
            }
          } else {
            return Err("namespace: expected a mapping");
          }
        }
        for (const auto& [k, v] : kwargs) ns.object().Set(k, v);
        return ns;
      });
}

Value MakeStrftimeNow() {
  return Value::Function([](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
    if (args.empty() || !args[0].is_string()) return Err("strftime_now: expected a format string");
    static constexpr const char* kMonths[] = {"January",   "February", "March",    "April",
                                              "May",       "June",     "July",     "August",
                                              "September", "October",  "November", "December"};
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    auto pad2 = [](int n) { return n < 10 ? absl::StrCat("0", n) : absl::StrCat(n); };
    const std::string& f = args[0].as_string();
    std::string out;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i] != '%' || i + 1 >= f.size()) {
        out.push_back(f[i]);
        continue;
      }
      const char c = f[++i];
      switch (c) {
        case 'Y':
          out += absl::StrCat(tm.tm_year + 1900);
          break;
        case 'm':
          out += pad2(tm.tm_mon + 1);
          break;
        case 'd':
          out += pad2(tm.tm_mday);
          break;
        case 'H':
          out += pad2(tm.tm_hour);
          break;
        case 'M':
          out += pad2(tm.tm_min);
          break;
        case 'B':
          out += kMonths[tm.tm_mon];
          break;
        case 'b':
          out += std::string(kMonths[tm.tm_mon]).substr(0, 3);
          break;
        case '%':
          out.push_back('%');
          break;
        default:
          out.push_back('%');
          out.push_back(c);
      }
    }
    return Value::String(std::move(out));
  });
}

}  // namespace moe::model::jinja::internal
