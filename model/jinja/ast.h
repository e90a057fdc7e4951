// Syntax tree of a parsed template. Immutable after parsing; shared by every copy of a Template.
#ifndef MOE_MODEL_JINJA_AST_H_
#define MOE_MODEL_JINJA_AST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moe::model::jinja {

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

enum class NodeType : uint8_t {
  // Expressions.
  kStringLiteral,  // str
  kIntLiteral,     // int_value
  kFloatLiteral,   // float_value
  kIdentifier,     // str
  kArrayLiteral,   // list
  kTupleLiteral,   // list
  kObjectLiteral,  // list: key0, value0, key1, value1, ...
  kMember,         // a = object, b = property (kSlice when slicing), flag = computed ([...])
  kSlice,          // a, b, c = start, stop, step (each may be null)
  kCall,           // a = callee, list = arguments
  kKeywordArg,     // str = name, a = value
  kSpread,         // *a
  kKeywordSpread,  // **a
  kBinary,         // str = operator, a, b
  kUnary,          // str = operator ("not", "-", "+"), a
  kFilter,         // a = operand, b = filter (kIdentifier or kCall of one)
  kTest,           // a = operand, str = test name, flag = negated, list = arguments
  kSelect,         // a = value, b = condition   (`a if b` without else)
  kTernary,        // a = condition, b = if true, c = if false
  // Statements.
  kText,         // str
  kComment,      //
  kIf,           // a = condition, list = body, list2 = else body
  kFor,          // a = target, b = iterable (kSelect when filtered), list = body, list2 = else
  kSet,          // a = target, b = value (null: block set), list = block body
  kMacro,        // str = name, list = parameters, list2 = body
  kCallBlock,    // a = call expression, list = caller parameters, list2 = body
  kFilterBlock,  // a = filter, list = body
  kBreak,
  kContinue,
};

struct Node {
  NodeType type;
  uint32_t offset = 0;  // byte offset in the template source (for error messages)
  std::string str;
  int64_t int_value = 0;
  double float_value = 0;
  bool flag = false;
  NodePtr a, b, c;
  NodeList list, list2;
};

}  // namespace moe::model::jinja

#endif  // MOE_MODEL_JINJA_AST_H_
