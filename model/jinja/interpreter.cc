#include "model/jinja/interpreter.h"

#include <cmath>
#include <deque>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/jinja/builtins.h"
#include "model/jinja/lexer.h"

namespace moe::model::jinja::internal {
namespace {

constexpr size_t kMaxScopes = size_t{4} << 20;
constexpr char kErrorPrefix[] = "template error at ";

// A variable scope. Scopes live in the interpreter's arena until the render ends, so closures
// (macros, caller blocks) may keep raw pointers to them.
struct Scope {
  std::unordered_map<std::string, Value> vars;
  Scope* parent = nullptr;

  const Value* Lookup(const std::string& name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};

class Interpreter {
 public:
  Interpreter(std::string_view source, const RenderLimits& limits)
      : source_(source),
        limits_(limits),
        builtin_limits_{limits.max_output_bytes, limits.max_loop_iterations} {}

  // Namespaces are the only mutable containers a template can make point to themselves;
  // emptying them frees any cycle the template built.
  ~Interpreter() {
    for (Value& ns : namespaces_) ns.object().Clear();
  }

  absl::StatusOr<std::string> Run(const NodeList& program, const Value& globals) {
    Scope* root = NewScope(nullptr);
    if (root == nullptr) return absl::ResourceExhaustedError("scope limit");
    const Value kTrue = Value::Bool(true);
    const Value kFalse = Value::Bool(false);
    root->vars["true"] = kTrue;
    root->vars["True"] = kTrue;
    root->vars["false"] = kFalse;
    root->vars["False"] = kFalse;
    root->vars["none"] = Value::None();
    root->vars["None"] = Value::None();
    root->vars["range"] = MakeRange(builtin_limits_);
    root->vars["namespace"] = MakeNamespaceFunction(&namespaces_);
    root->vars["strftime_now"] = MakeStrftimeNow();
    root->vars["raise_exception"] =
        Value::Function([this](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
          raised_ = true;
          return absl::InvalidArgumentError(args.empty() ? std::string("raise_exception")
                                                         : ToOutputString(args[0]));
        });
    if (globals.is_mapping()) {
      for (const auto& [k, v] : globals.object().items()) root->vars[k] = v;
    }
    std::string out;
    MOE_RETURN_IF_ERROR(RenderBlock(program, root, &out));
    if (flow_ != Flow::kNormal) {
      return absl::InvalidArgumentError("template error: break or continue outside a loop");
    }
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  class DepthGuard {
   public:
    explicit DepthGuard(Interpreter* in) : in_(in) { ++in_->depth_; }
    ~DepthGuard() { --in_->depth_; }

   private:
    Interpreter* in_;
  };

  Scope* NewScope(Scope* parent) {
    if (scopes_.size() >= kMaxScopes) return nullptr;
    scopes_.emplace_back();
    scopes_.back().parent = parent;
    return &scopes_.back();
  }

  absl::Status Error(const Node& node, const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(kErrorPrefix, DescribePosition(source_, node.offset), ": ", what));
  }
  // Adds the position of `node` to an error that has none yet (raise_exception keeps its
  // message exactly as the template wrote it).
  absl::Status Decorate(absl::Status status, const Node& node) const {
    if (status.ok() || raised_ || absl::StartsWith(status.message(), kErrorPrefix) ||
        absl::StartsWith(status.message(), "template limit")) {
      return status;
    }
    return absl::Status(
        status.code(),
        absl::StrCat(kErrorPrefix, DescribePosition(source_, node.offset), ": ", status.message()));
  }
  absl::Status Step(const Node& node) {
    if (++steps_ > limits_.max_steps) {
      return absl::InvalidArgumentError(
          absl::StrCat("template limit: more than ", limits_.max_steps, " evaluation steps"));
    }
    if (depth_ > limits_.max_depth) {
      return absl::InvalidArgumentError(
          absl::StrCat("template limit: nesting or recursion deeper than ", limits_.max_depth));
    }
    return absl::OkStatus();
  }
  absl::Status Append(std::string* out, std::string_view s) const {
    if (out->size() + s.size() > limits_.max_output_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("template limit: output larger than ", limits_.max_output_bytes, " bytes"));
    }
    out->append(s);
    return absl::OkStatus();
  }
  absl::StatusOr<Value> CheckedString(std::string s) const {
    if (s.size() > limits_.max_output_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("template limit: string larger than ", limits_.max_output_bytes, " bytes"));
    }
    return Value::String(std::move(s));
  }

  // ---- Statements ----

  absl::Status RenderBlock(const NodeList& body, Scope* scope, std::string* out) {
    for (const NodePtr& node : body) {
      MOE_RETURN_IF_ERROR(RenderNode(*node, scope, out));
      if (flow_ != Flow::kNormal) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  absl::Status RenderNode(const Node& node, Scope* scope, std::string* out) {
    DepthGuard guard(this);
    MOE_RETURN_IF_ERROR(Step(node));
    return Decorate(RenderNodeImpl(node, scope, out), node);
  }

  absl::Status RenderNodeImpl(const Node& node, Scope* scope, std::string* out) {
    switch (node.type) {
      case NodeType::kText:
        return Append(out, node.str);
      case NodeType::kComment:
        return absl::OkStatus();
      case NodeType::kIf: {
        MOE_ASSIGN_OR_RETURN(Value cond, Eval(*node.a, scope));
        return RenderBlock(cond.Truthy() ? node.list : node.list2, scope, out);
      }
      case NodeType::kFor:
        return RenderFor(node, scope, out);
      case NodeType::kSet:
        return ExecSet(node, scope);
      case NodeType::kMacro:
        scope->vars[node.str] = MakeMacro(node, scope);
        return absl::OkStatus();
      case NodeType::kCallBlock: {
        MOE_ASSIGN_OR_RETURN(Value result, CallBlock(node, scope));
        return Append(out, ToOutputString(result));
      }
      case NodeType::kFilterBlock: {
        std::string body;
        MOE_RETURN_IF_ERROR(RenderBlock(node.list, scope, &body));
        MOE_ASSIGN_OR_RETURN(Value result,
                             ApplyFilterNode(*node.a, Value::String(std::move(body)), scope));
        return Append(out, ToOutputString(result));
      }
      case NodeType::kBreak:
        flow_ = Flow::kBreak;
        return absl::OkStatus();
      case NodeType::kContinue:
        flow_ = Flow::kContinue;
        return absl::OkStatus();
      default: {
        MOE_ASSIGN_OR_RETURN(Value v, Eval(node, scope));
        if (v.is_undefined() || v.is_none()) return absl::OkStatus();
        return Append(out, ToOutputString(v));
      }
    }
  }

  absl::Status Bind(const Node& target, const Value& value, Scope* scope) {
    if (target.type == NodeType::kIdentifier) {
      scope->vars[target.str] = value;
      return absl::OkStatus();
    }
    if (target.type != NodeType::kTupleLiteral) return Error(target, "cannot assign to this");
    if (!value.is_array()) {
      return Error(target, absl::StrCat("cannot unpack ", value.TypeName()));
    }
    if (value.array().size() != target.list.size()) {
      return Error(target, absl::StrCat("expected ", target.list.size(), " values to unpack, got ",
                                        value.array().size()));
    }
    for (size_t i = 0; i < target.list.size(); ++i) {
      if (target.list[i]->type != NodeType::kIdentifier) {
        return Error(*target.list[i], "can only unpack into names");
      }
      scope->vars[target.list[i]->str] = value.array()[i];
    }
    return absl::OkStatus();
  }

  absl::Status RenderFor(const Node& node, Scope* scope, std::string* out) {
    Scope* loop_scope = NewScope(scope);
    if (loop_scope == nullptr) return Error(node, "template limit: too many scopes");
    const Node* iterable_node = node.b.get();
    const Node* condition = nullptr;
    if (iterable_node->type == NodeType::kSelect) {
      condition = iterable_node->b.get();
      iterable_node = iterable_node->a.get();
    }
    MOE_ASSIGN_OR_RETURN(Value iterable, Eval(*iterable_node, loop_scope));
    std::vector<Value> candidates;
    if (iterable.is_array()) {
      candidates = iterable.array();
    } else if (iterable.is_mapping()) {
      for (const auto& [k, v] : iterable.object().items()) candidates.push_back(Value::String(k));
    } else if (iterable.is_string()) {
      candidates =
          ApplyFilter("list", iterable, empty_args_, empty_kwargs_, builtin_limits_)->array();
    } else if (!iterable.is_undefined()) {
      return Error(*iterable_node, absl::StrCat(iterable.TypeName(), " is not iterable"));
    }
    std::vector<Value> items;
    for (Value& item : candidates) {
      if (node.a->type == NodeType::kTupleLiteral &&
          (!item.is_array() || item.array().size() != node.a->list.size())) {
        return Error(*node.a, "cannot unpack the loop item into the loop variables");
      }
      if (condition != nullptr) {
        MOE_RETURN_IF_ERROR(CountIteration(node));
        Scope* item_scope = NewScope(loop_scope);
        if (item_scope == nullptr) return Error(node, "template limit: too many scopes");
        MOE_RETURN_IF_ERROR(Bind(*node.a, item, item_scope));
        MOE_ASSIGN_OR_RETURN(Value keep, Eval(*condition, item_scope));
        if (!keep.Truthy()) continue;
      }
      items.push_back(std::move(item));
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      MOE_RETURN_IF_ERROR(CountIteration(node));
      loop_scope->vars["loop"] = MakeLoop(items, i);
      MOE_RETURN_IF_ERROR(Bind(*node.a, items[static_cast<size_t>(i)], loop_scope));
      MOE_RETURN_IF_ERROR(RenderBlock(node.list, loop_scope, out));
      if (flow_ == Flow::kBreak) {
        flow_ = Flow::kNormal;
        break;
      }
      flow_ = Flow::kNormal;
    }
    if (items.empty()) return RenderBlock(node.list2, loop_scope, out);
    return absl::OkStatus();
  }

  absl::Status CountIteration(const Node& node) {
    if (++iterations_ > limits_.max_loop_iterations) {
      return absl::InvalidArgumentError(absl::StrCat(
          "template limit: more than ", limits_.max_loop_iterations, " loop iterations"));
    }
    return absl::OkStatus();
  }

  static Value MakeLoop(const std::vector<Value>& items, int64_t i) {
    const int64_t n = static_cast<int64_t>(items.size());
    Value loop = Value::Object();
    ObjectData& o = loop.object();
    o.Set("index", Value::Int(i + 1));
    o.Set("index0", Value::Int(i));
    o.Set("revindex", Value::Int(n - i));
    o.Set("revindex0", Value::Int(n - i - 1));
    o.Set("first", Value::Bool(i == 0));
    o.Set("last", Value::Bool(i == n - 1));
    o.Set("length", Value::Int(n));
    o.Set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value());
    o.Set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value());
    o.Set("cycle", Value::Function([i](std::vector<Value>& args, Kwargs&) -> absl::StatusOr<Value> {
            if (args.empty()) return absl::InvalidArgumentError("loop.cycle: no items");
            return args[static_cast<size_t>(i % static_cast<int64_t>(args.size()))];
          }));
    return loop;
  }

  absl::Status ExecSet(const Node& node, Scope* scope) {
    Value value;
    if (node.b != nullptr) {
      MOE_ASSIGN_OR_RETURN(value, Eval(*node.b, scope));
    } else {
      std::string body;
      MOE_RETURN_IF_ERROR(RenderBlock(node.list, scope, &body));
      value = Value::String(std::move(body));
    }
    const Node& target = *node.a;
    if (target.type == NodeType::kMember && !target.flag &&
        target.b->type == NodeType::kIdentifier) {
      MOE_ASSIGN_OR_RETURN(Value object, Eval(*target.a, scope));
      if (!object.is_namespace()) {
        return Error(target, "cannot assign an attribute of something that is not a namespace");
      }
      object.object().Set(target.b->str, std::move(value));
      return absl::OkStatus();
    }
    return Bind(target, value, scope);
  }

  Value MakeMacro(const Node& node, Scope* defining_scope) {
    const Node* macro = &node;
    return Value::Function([this, macro, defining_scope](std::vector<Value>& args,
                                                         Kwargs& kwargs) -> absl::StatusOr<Value> {
      Value caller = std::move(pending_caller_);
      pending_caller_ = Value();
      return InvokeBody(*macro, macro->list, macro->list2, defining_scope, args, kwargs, caller);
    });
  }

  // Binds `params` to the call arguments in a new scope under `parent` and renders `body`.
  absl::StatusOr<Value> InvokeBody(const Node& node, const NodeList& params, const NodeList& body,
                                   Scope* parent, std::vector<Value>& args, Kwargs& kwargs,
                                   const Value& caller) {
    DepthGuard guard(this);
    MOE_RETURN_IF_ERROR(Step(node));
    Scope* scope = NewScope(parent);
    if (scope == nullptr) return Error(node, "template limit: too many scopes");
    if (!caller.is_undefined()) scope->vars["caller"] = caller;
    std::vector<const Node*> defaults;
    for (size_t i = 0; i < params.size(); ++i) {
      const Node& param = *params[i];
      const std::string& name = param.str;  // kIdentifier or kKeywordArg (with a default)
      Value value;
      bool bound = false;
      if (i < args.size()) {
        value = args[i];
        bound = true;
      } else {
        for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
          if (it->first == name) {
            value = it->second;
            kwargs.erase(it);
            bound = true;
            break;
          }
        }
      }
      scope->vars[name] = value;
      if (!bound && param.type == NodeType::kKeywordArg) defaults.push_back(&param);
    }
    std::vector<Value> varargs;
    for (size_t i = params.size(); i < args.size(); ++i) varargs.push_back(args[i]);
    scope->vars["varargs"] = Value::Array(std::move(varargs));
    Value extra = Value::Object();
    for (auto& [k, v] : kwargs) extra.object().Set(k, v);
    scope->vars["kwargs"] = extra;
    for (const Node* param : defaults) {
      MOE_ASSIGN_OR_RETURN(Value v, Eval(*param->a, scope));
      scope->vars[param->str] = std::move(v);
    }
    std::string out;
    MOE_RETURN_IF_ERROR(RenderBlock(body, scope, &out));
    if (flow_ != Flow::kNormal) {
      flow_ = Flow::kNormal;
      return Error(node, "break or continue outside a loop");
    }
    return Value::String(std::move(out));
  }

  absl::StatusOr<Value> CallBlock(const Node& node, Scope* scope) {
    const Node* block = &node;
    Value caller = Value::Function(
        [this, block, scope](std::vector<Value>& args, Kwargs& kwargs) -> absl::StatusOr<Value> {
          return InvokeBody(*block, block->list, block->list2, scope, args, kwargs, Value());
        });
    const Node& call = *node.a;
    std::vector<Value> args;
    Kwargs kwargs;
    MOE_RETURN_IF_ERROR(EvalArgs(call.list, scope, &args, &kwargs));
    MOE_ASSIGN_OR_RETURN(Value fn, Eval(*call.a, scope));
    if (!fn.is_function()) return Error(call, "cannot call something that is not a macro");
    pending_caller_ = caller;
    auto result = fn.function()(args, kwargs);
    pending_caller_ = Value();
    return result;
  }

  // ---- Expressions ----

  absl::StatusOr<Value> Eval(const Node& node, Scope* scope) {
    DepthGuard guard(this);
    MOE_RETURN_IF_ERROR(Step(node));
    auto result = EvalImpl(node, scope);
    if (!result.ok()) return Decorate(result.status(), node);
    return result;
  }

  absl::StatusOr<Value> EvalImpl(const Node& node, Scope* scope) {
    switch (node.type) {
      case NodeType::kStringLiteral:
        return Value::String(node.str);
      case NodeType::kIntLiteral:
        return Value::Int(node.int_value);
      case NodeType::kFloatLiteral:
        return Value::Float(node.float_value);
      case NodeType::kIdentifier: {
        const Value* v = scope->Lookup(node.str);
        return v != nullptr ? *v : Value();
      }
      case NodeType::kArrayLiteral:
      case NodeType::kTupleLiteral: {
        std::vector<Value> items;
        for (const NodePtr& item : node.list) {
          MOE_ASSIGN_OR_RETURN(Value v, Eval(*item, scope));
          items.push_back(std::move(v));
        }
        return Value::Array(std::move(items));
      }
      case NodeType::kObjectLiteral: {
        Value object = Value::Object();
        for (size_t i = 0; i + 1 < node.list.size(); i += 2) {
          MOE_ASSIGN_OR_RETURN(Value key, Eval(*node.list[i], scope));
          if (!key.is_string()) return Error(*node.list[i], "object keys must be strings");
          MOE_ASSIGN_OR_RETURN(Value value, Eval(*node.list[i + 1], scope));
          object.object().Set(key.as_string(), std::move(value));
        }
        return object;
      }
      case NodeType::kMember:
        return EvalMember(node, scope);
      case NodeType::kCall: {
        std::vector<Value> args;
        Kwargs kwargs;
        MOE_RETURN_IF_ERROR(EvalArgs(node.list, scope, &args, &kwargs));
        MOE_ASSIGN_OR_RETURN(Value fn, Eval(*node.a, scope));
        if (!fn.is_function()) {
          return Error(node, absl::StrCat("cannot call ", fn.TypeName()));
        }
        return fn.function()(args, kwargs);
      }
      case NodeType::kBinary:
        return EvalBinary(node, scope);
      case NodeType::kUnary: {
        MOE_ASSIGN_OR_RETURN(Value v, Eval(*node.a, scope));
        if (node.str == "not") return Value::Bool(!v.Truthy());
        const bool negate = node.str == "-";
        if (v.is_bool()) v = Value::Int(v.as_bool() ? 1 : 0);
        if (v.is_int()) {
          if (negate && v.as_int() == INT64_MIN) return Error(node, "integer overflow");
          return Value::Int(negate ? -v.as_int() : v.as_int());
        }
        if (v.is_float()) return Value::Float(negate ? -v.as_float() : v.as_float());
        return Error(node, absl::StrCat("bad operand for unary ", node.str, ": ", v.TypeName()));
      }
      case NodeType::kFilter: {
        MOE_ASSIGN_OR_RETURN(Value operand, Eval(*node.a, scope));
        return ApplyFilterNode(*node.b, operand, scope);
      }
      case NodeType::kTest: {
        MOE_ASSIGN_OR_RETURN(Value operand, Eval(*node.a, scope));
        std::vector<Value> args;
        Kwargs kwargs;
        MOE_RETURN_IF_ERROR(EvalArgs(node.list, scope, &args, &kwargs));
        MOE_ASSIGN_OR_RETURN(bool result, ApplyTest(node.str, operand, args));
        return Value::Bool(node.flag ? !result : result);
      }
      case NodeType::kSelect: {
        MOE_ASSIGN_OR_RETURN(Value cond, Eval(*node.b, scope));
        if (!cond.Truthy()) return Value();
        return Eval(*node.a, scope);
      }
      case NodeType::kTernary: {
        MOE_ASSIGN_OR_RETURN(Value cond, Eval(*node.a, scope));
        return Eval(cond.Truthy() ? *node.b : *node.c, scope);
      }
      default:
        return Error(node, "not an expression");
    }
  }

  absl::Status EvalArgs(const NodeList& list, Scope* scope, std::vector<Value>* args,
                        Kwargs* kwargs) {
    for (const NodePtr& arg : list) {
      if (arg->type == NodeType::kKeywordArg) continue;
      if (arg->type == NodeType::kKeywordSpread) continue;
      MOE_ASSIGN_OR_RETURN(Value v, Eval(arg->type == NodeType::kSpread ? *arg->a : *arg, scope));
      if (arg->type == NodeType::kSpread) {
        if (!v.is_array()) return Error(*arg, "cannot unpack a non-array with *");
        for (const Value& item : v.array()) args->push_back(item);
      } else {
        args->push_back(std::move(v));
      }
    }
    for (const NodePtr& arg : list) {
      if (arg->type == NodeType::kKeywordArg) {
        MOE_ASSIGN_OR_RETURN(Value v, Eval(*arg->a, scope));
        kwargs->emplace_back(arg->str, std::move(v));
      } else if (arg->type == NodeType::kKeywordSpread) {
        MOE_ASSIGN_OR_RETURN(Value v, Eval(*arg->a, scope));
        if (!v.is_object()) return Error(*arg, "argument after ** must be a mapping");
        for (const auto& [k, value] : v.object().items()) kwargs->emplace_back(k, value);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> ApplyFilterNode(const Node& filter, const Value& operand, Scope* scope) {
    std::vector<Value> args;
    Kwargs kwargs;
    const std::string* name = &filter.str;
    if (filter.type == NodeType::kCall) {
      name = &filter.a->str;
      MOE_RETURN_IF_ERROR(EvalArgs(filter.list, scope, &args, &kwargs));
    }
    return ApplyFilter(*name, operand, args, kwargs, builtin_limits_);
  }

  absl::StatusOr<Value> EvalMember(const Node& node, Scope* scope) {
    MOE_ASSIGN_OR_RETURN(Value object, Eval(*node.a, scope));
    const Node& prop = *node.b;
    if (prop.type == NodeType::kSlice) {
      Value start, stop, step;
      if (prop.a) {
        MOE_ASSIGN_OR_RETURN(start, Eval(*prop.a, scope));
      }
      if (prop.b) {
        MOE_ASSIGN_OR_RETURN(stop, Eval(*prop.b, scope));
      }
      if (prop.c) {
        MOE_ASSIGN_OR_RETURN(step, Eval(*prop.c, scope));
      }
      return Slice(object, start, stop, step);
    }
    Value key;
    if (node.flag) {
      MOE_ASSIGN_OR_RETURN(key, Eval(prop, scope));
    } else if (prop.type == NodeType::kIntLiteral) {
      key = Value::Int(prop.int_value);
    } else {
      key = Value::String(prop.str);
    }
    if (key.is_string()) return GetAttribute(object, key.as_string(), builtin_limits_);
    if (key.is_int() && (object.is_array() || object.is_string())) {
      return GetIndex(object, key.as_int());
    }
    if (key.is_int() && object.is_undefined()) return Value();
    return Error(node, absl::StrCat("cannot index ", object.TypeName(), " with ", key.TypeName()));
  }

  absl::StatusOr<Value> Arithmetic(const Node& node, const std::string& op, const Value& l,
                                   const Value& r) {
    const bool ints = l.is_int() && r.is_int();
    if (op == "/") {
      if (r.as_number() == 0) return Error(node, "division by zero");
      return Value::Float(l.as_number() / r.as_number());
    }
    if (ints) {
      const int64_t a = l.as_int();
      const int64_t b = r.as_int();
      int64_t result = 0;
      if (op == "+" && !__builtin_add_overflow(a, b, &result)) return Value::Int(result);
      if (op == "-" && !__builtin_sub_overflow(a, b, &result)) return Value::Int(result);
      if (op == "*" && !__builtin_mul_overflow(a, b, &result)) return Value::Int(result);
      if (op == "//" || op == "%") {
        if (b == 0) return Error(node, "division by zero");
        if (a == INT64_MIN && b == -1) return Error(node, "integer overflow");
        int64_t q = a / b;
        int64_t m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) {  // Python floors
          q -= 1;
          m += b;
        }
        return Value::Int(op == "//" ? q : m);
      }
      if (op == "+" || op == "-" || op == "*") return Error(node, "integer overflow");
    }
    const double a = l.as_number();
    const double b = r.as_number();
    if (op == "+") return Value::Float(a + b);
    if (op == "-") return Value::Float(a - b);
    if (op == "*") return Value::Float(a * b);
    if (op == "//" || op == "%") {
      if (b == 0) return Error(node, "division by zero");
      if (op == "//") return Value::Float(std::floor(a / b));
      double m = std::fmod(a, b);
      if (m != 0 && ((m < 0) != (b < 0))) m += b;
      return Value::Float(m);
    }
    if (op == "<") return Value::Bool(a < b);
    if (op == ">") return Value::Bool(a > b);
    if (op == "<=") return Value::Bool(a <= b);
    if (op == ">=") return Value::Bool(a >= b);
    return Error(node, absl::StrCat("unsupported operator ", op, " for numbers"));
  }

  absl::StatusOr<Value> EvalBinary(const Node& node, Scope* scope) {
    const std::string& op = node.str;
    MOE_ASSIGN_OR_RETURN(Value l, Eval(*node.a, scope));
    if (op == "and") return l.Truthy() ? Eval(*node.b, scope) : l;
    if (op == "or") return l.Truthy() ? l : Eval(*node.b, scope);
    MOE_ASSIGN_OR_RETURN(Value r, Eval(*node.b, scope));
    if (op == "==") return Value::Bool(LooseEquals(l, r));
    if (op == "!=") return Value::Bool(!LooseEquals(l, r));
    const bool membership = op == "in" || op == "not in";
    if (l.is_number() && r.is_number() && op != "~" && op != "**" && !membership) {
      return Arithmetic(node, op, l, r);
    }
    if (l.is_undefined() || r.is_undefined()) {
      if (r.is_undefined() && membership) return Value::Bool(op == "not in");
      if (op == "~" && !l.is_none() && !r.is_none()) {
        return CheckedString(ToOutputString(l) + ToOutputString(r));
      }
      return Error(node, absl::StrCat("cannot apply ", op, " to an undefined value"));
    }
    if (l.is_none() || r.is_none()) {
      return Error(node, absl::StrCat("cannot apply ", op, " to none"));
    }
    if (op == "~") return CheckedString(ToOutputString(l) + ToOutputString(r));
    if (op == "**") {
      auto num = [](const Value& v) -> std::optional<double> {
        if (v.is_number()) return v.as_number();
        if (v.is_bool()) return v.as_bool() ? 1.0 : 0.0;
        return std::nullopt;
      };
      const auto a = num(l);
      const auto b = num(r);
      if (a && b) {
        if (*a == 0 && *b < 0) return Error(node, "0 cannot be raised to a negative power");
        const double p = std::pow(*a, *b);
        if (!std::isfinite(p)) return Error(node, "power result is not a finite number");
        if (l.is_float() || r.is_float() || *b < 0) return Value::Float(p);
        if (std::fabs(p) > 9.0e18) return Error(node, "integer overflow");
        return Value::Int(static_cast<int64_t>(p));
      }
    }
    if (l.is_array() && r.is_array() && op == "+") {
      if (static_cast<int64_t>(l.array().size() + r.array().size()) > limits_.max_loop_iterations) {
        return Error(node, "template limit: array too large");
      }
      std::vector<Value> items = l.array();
      items.insert(items.end(), r.array().begin(), r.array().end());
      return Value::Array(std::move(items));
    }
    if (r.is_array() && membership) {
      bool found = false;
      for (const Value& item : r.array()) {
        if (StrictEquals(item, l)) {
          found = true;
          break;
        }
      }
      return Value::Bool(op == "in" ? found : !found);
    }
    if ((l.is_string() || r.is_string()) && op == "+") {
      return CheckedString(ToOutputString(l) + ToOutputString(r));
    }
    if (l.is_string() && r.is_string()) {
      const std::string& a = l.as_string();
      const std::string& b = r.as_string();
      if (membership) {
        const bool found = b.find(a) != std::string::npos;
        return Value::Bool(op == "in" ? found : !found);
      }
      if (op == "<") return Value::Bool(a < b);
      if (op == ">") return Value::Bool(a > b);
      if (op == "<=") return Value::Bool(a <= b);
      if (op == ">=") return Value::Bool(a >= b);
    }
    if (l.is_string() && r.is_mapping() && membership) {
      const bool found = r.object().Find(l.as_string()) != nullptr;
      return Value::Bool(op == "in" ? found : !found);
    }
    return Error(node, absl::StrCat("unsupported operator ", op, " between ", l.TypeName(), " and ",
                                    r.TypeName()));
  }

  std::string_view source_;
  const RenderLimits& limits_;
  BuiltinLimits builtin_limits_;
  std::deque<Scope> scopes_;
  Flow flow_ = Flow::kNormal;
  int depth_ = 0;
  int64_t steps_ = 0;
  int64_t iterations_ = 0;
  bool raised_ = false;
  Value pending_caller_;
  std::vector<Value> namespaces_;  // every namespace() made by this render
  std::vector<Value> empty_args_;
  Kwargs empty_kwargs_;
};

}  // namespace

absl::StatusOr<std::string> RenderProgram(const NodeList& program, std::string_view source,
                                          const Value& globals, const RenderLimits& limits) {
  Interpreter interpreter(source, limits);
  return interpreter.Run(program, globals);
}

}  // namespace moe::model::jinja::internal
