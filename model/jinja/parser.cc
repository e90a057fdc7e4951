#include "model/jinja/parser.h"

#include <charconv>
#include <cstdlib>
#include <initializer_list>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::model::jinja {
namespace {

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, std::string_view source, int max_depth)
      : tokens_(tokens), source_(source), max_depth_(max_depth) {}

  absl::StatusOr<NodeList> ParseProgram() {
    NodeList body;
    while (pos_ < tokens_.size()) {
      MOE_ASSIGN_OR_RETURN(NodePtr node, ParseAny());
      body.push_back(std::move(node));
    }
    return body;
  }

 private:
  // Guards recursion depth (nested blocks and expressions) against stack exhaustion.
  class DepthGuard {
   public:
    explicit DepthGuard(Parser* p) : p_(p) { ++p_->depth_; }
    ~DepthGuard() { --p_->depth_; }
    bool exceeded() const { return p_->depth_ > p_->max_depth_; }

   private:
    Parser* p_;
  };

  const Token* Cur(size_t k = 0) const {
    return pos_ + k < tokens_.size() ? &tokens_[pos_ + k] : nullptr;
  }
  bool Is(TokenType type, size_t k = 0) const {
    const Token* t = Cur(k);
    return t != nullptr && t->type == type;
  }
  bool IsIdent(std::string_view name, size_t k = 0) const {
    const Token* t = Cur(k);
    return t != nullptr && t->type == TokenType::kIdentifier && t->value == name;
  }
  bool IsStatement(std::initializer_list<std::string_view> names) const {
    if (!Is(TokenType::kOpenStatement) || !Is(TokenType::kIdentifier, 1)) return false;
    for (std::string_view name : names) {
      if (tokens_[pos_ + 1].value == name) return true;
    }
    return false;
  }
  uint32_t Offset() const {
    if (pos_ < tokens_.size()) return tokens_[pos_].offset;
    return static_cast<uint32_t>(source_.size());
  }
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("template syntax error at ", DescribePosition(source_, Offset()), ": ", what));
  }
  absl::Status Expect(TokenType type, const std::string& what) {
    if (!Is(type)) {
      return Error(pos_ < tokens_.size()
                       ? absl::StrCat("expected ", what)
                       : absl::StrCat("unexpected end of template, expected ", what));
    }
    ++pos_;
    return absl::OkStatus();
  }
  absl::Status ExpectIdent(const std::string& name) {
    if (!IsIdent(name)) return Error(absl::StrCat("expected '", name, "'"));
    ++pos_;
    return absl::OkStatus();
  }
  NodePtr MakeNode(NodeType type, uint32_t offset) {
    auto node = std::make_unique<Node>();
    node->type = type;
    node->offset = offset;
    return node;
  }

  // Parses statements until `{% <one of names>`; fails at the end of the template.
  absl::Status ParseUntil(std::initializer_list<std::string_view> names, NodeList* body) {
    while (!IsStatement(names)) {
      if (pos_ >= tokens_.size()) {
        return Error(absl::StrCat("unexpected end of template, expected {% ",
                                  std::string(*names.begin()), " %}"));
      }
      MOE_ASSIGN_OR_RETURN(NodePtr node, ParseAny());
      body->push_back(std::move(node));
    }
    return absl::OkStatus();
  }
  absl::Status ExpectEnd(const std::string& name) {
    MOE_RETURN_IF_ERROR(Expect(TokenType::kOpenStatement, "'{%'"));
    MOE_RETURN_IF_ERROR(ExpectIdent(name));
    return Expect(TokenType::kCloseStatement, "'%}'");
  }

  absl::StatusOr<NodePtr> ParseAny() {
    DepthGuard guard(this);
    if (guard.exceeded()) return Error("template nested too deeply");
    const Token& t = tokens_[pos_];
    switch (t.type) {
      case TokenType::kComment: {
        ++pos_;
        return MakeNode(NodeType::kComment, t.offset);
      }
      case TokenType::kText: {
        NodePtr node = MakeNode(NodeType::kText, t.offset);
        node->str = t.value;
        ++pos_;
        return node;
      }
      case TokenType::kOpenStatement:
        return ParseStatement();
      case TokenType::kOpenExpression: {
        ++pos_;
        MOE_ASSIGN_OR_RETURN(NodePtr expr, ParseExpression());
        MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseExpression, "'}}'"));
        return expr;
      }
      default:
        return Error(absl::StrCat("unexpected '", t.value, "'"));
    }
  }

  absl::StatusOr<NodePtr> ParseStatement() {
    ++pos_;  // {%
    if (!Is(TokenType::kIdentifier)) return Error("expected a statement name");
    const Token& name_token = tokens_[pos_];
    const std::string name = name_token.value;
    const uint32_t offset = name_token.offset;
    ++pos_;
    if (name == "set") return ParseSet(offset);
    if (name == "if") {
      MOE_ASSIGN_OR_RETURN(NodePtr node, ParseIf(offset));
      MOE_RETURN_IF_ERROR(ExpectEnd("endif"));
      return node;
    }
    if (name == "for") {
      MOE_ASSIGN_OR_RETURN(NodePtr node, ParseFor(offset));
      MOE_RETURN_IF_ERROR(ExpectEnd("endfor"));
      return node;
    }
    if (name == "macro") {
      NodePtr node = MakeNode(NodeType::kMacro, offset);
      if (!Is(TokenType::kIdentifier)) return Error("expected a macro name");
      node->str = tokens_[pos_++].value;
      MOE_RETURN_IF_ERROR(ParseArgs(/*parameters=*/true, &node->list));
      MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
      MOE_RETURN_IF_ERROR(ParseUntil({"endmacro"}, &node->list2));
      MOE_RETURN_IF_ERROR(ExpectEnd("endmacro"));
      return node;
    }
    if (name == "call") {
      NodePtr node = MakeNode(NodeType::kCallBlock, offset);
      if (Is(TokenType::kOpenParen)) {
        MOE_RETURN_IF_ERROR(ParseArgs(/*parameters=*/true, &node->list));
      }
      if (!Is(TokenType::kIdentifier)) return Error("expected a macro name after 'call'");
      NodePtr call = MakeNode(NodeType::kCall, Offset());
      call->a = MakeNode(NodeType::kIdentifier, Offset());
      call->a->str = tokens_[pos_++].value;
      MOE_RETURN_IF_ERROR(ParseArgs(/*parameters=*/false, &call->list));
      node->a = std::move(call);
      MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
      MOE_RETURN_IF_ERROR(ParseUntil({"endcall"}, &node->list2));
      MOE_RETURN_IF_ERROR(ExpectEnd("endcall"));
      return node;
    }
    if (name == "filter") {
      NodePtr node = MakeNode(NodeType::kFilterBlock, offset);
      MOE_ASSIGN_OR_RETURN(node->a, ParseFilterName());
      MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
      MOE_RETURN_IF_ERROR(ParseUntil({"endfilter"}, &node->list));
      MOE_RETURN_IF_ERROR(ExpectEnd("endfilter"));
      return node;
    }
    if (name == "break" || name == "continue") {
      MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
      return MakeNode(name == "break" ? NodeType::kBreak : NodeType::kContinue, offset);
    }
    pos_ -= 1;
    return Error(absl::StrCat("unknown statement '", name, "'"));
  }

  absl::StatusOr<NodePtr> ParseSet(uint32_t offset) {
    NodePtr node = MakeNode(NodeType::kSet, offset);
    MOE_ASSIGN_OR_RETURN(node->a, ParseExpressionSequence(/*primary=*/false));
    if (Is(TokenType::kEquals)) {
      ++pos_;
      MOE_ASSIGN_OR_RETURN(node->b, ParseExpressionSequence(/*primary=*/false));
    } else {
      MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}' or '='"));
      MOE_RETURN_IF_ERROR(ParseUntil({"endset"}, &node->list));
      MOE_RETURN_IF_ERROR(Expect(TokenType::kOpenStatement, "'{%'"));
      MOE_RETURN_IF_ERROR(ExpectIdent("endset"));
    }
    MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
    return node;
  }

  absl::StatusOr<NodePtr> ParseIf(uint32_t offset) {
    DepthGuard guard(this);
    if (guard.exceeded()) return Error("template nested too deeply");
    NodePtr node = MakeNode(NodeType::kIf, offset);
    MOE_ASSIGN_OR_RETURN(node->a, ParseExpression());
    MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
    MOE_RETURN_IF_ERROR(ParseUntil({"elif", "else", "endif"}, &node->list));
    if (IsStatement({"elif"})) {
      const uint32_t elif_offset = tokens_[pos_ + 1].offset;
      pos_ += 2;
      MOE_ASSIGN_OR_RETURN(NodePtr nested, ParseIf(elif_offset));
      node->list2.push_back(std::move(nested));
    } else if (IsStatement({"else"})) {
      pos_ += 2;
      MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
      MOE_RETURN_IF_ERROR(ParseUntil({"endif"}, &node->list2));
    }
    return node;
  }

  absl::StatusOr<NodePtr> ParseFor(uint32_t offset) {
    NodePtr node = MakeNode(NodeType::kFor, offset);
    MOE_ASSIGN_OR_RETURN(node->a, ParseExpressionSequence(/*primary=*/true));
    if (node->a->type != NodeType::kIdentifier && node->a->type != NodeType::kTupleLiteral) {
      return Error("expected a name or a tuple of names as the loop variable");
    }
    if (!IsIdent("in")) return Error("expected 'in' after the loop variable");
    ++pos_;
    MOE_ASSIGN_OR_RETURN(node->b, ParseExpression());
    MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
    MOE_RETURN_IF_ERROR(ParseUntil({"endfor", "else"}, &node->list));
    if (IsStatement({"else"})) {
      pos_ += 2;
      MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseStatement, "'%}'"));
      MOE_RETURN_IF_ERROR(ParseUntil({"endfor"}, &node->list2));
    }
    return node;
  }

  absl::StatusOr<NodePtr> ParseExpressionSequence(bool primary) {
    const uint32_t offset = Offset();
    NodePtr first;
    if (primary) {
      MOE_ASSIGN_OR_RETURN(first, ParsePrimary());
    } else {
      MOE_ASSIGN_OR_RETURN(first, ParseExpression());
    }
    if (!Is(TokenType::kComma)) return first;
    NodePtr tuple = MakeNode(NodeType::kTupleLiteral, offset);
    tuple->list.push_back(std::move(first));
    while (Is(TokenType::kComma)) {
      ++pos_;
      NodePtr next;
      if (primary) {
        MOE_ASSIGN_OR_RETURN(next, ParsePrimary());
      } else {
        MOE_ASSIGN_OR_RETURN(next, ParseExpression());
      }
      tuple->list.push_back(std::move(next));
    }
    return tuple;
  }

  absl::StatusOr<NodePtr> ParseExpression() {
    DepthGuard guard(this);
    if (guard.exceeded()) return Error("expression nested too deeply");
    const uint32_t offset = Offset();
    MOE_ASSIGN_OR_RETURN(NodePtr value, ParseOr());
    if (!IsIdent("if")) return value;
    ++pos_;
    MOE_ASSIGN_OR_RETURN(NodePtr condition, ParseOr());
    if (IsIdent("else")) {
      ++pos_;
      NodePtr node = MakeNode(NodeType::kTernary, offset);
      node->a = std::move(condition);
      node->b = std::move(value);
      MOE_ASSIGN_OR_RETURN(node->c, ParseExpression());
      return node;
    }
    NodePtr node = MakeNode(NodeType::kSelect, offset);
    node->a = std::move(value);
    node->b = std::move(condition);
    return node;
  }

  NodePtr MakeBinary(std::string op, NodePtr left, NodePtr right, uint32_t offset) {
    NodePtr node = MakeNode(NodeType::kBinary, offset);
    node->str = std::move(op);
    node->a = std::move(left);
    node->b = std::move(right);
    return node;
  }

  absl::StatusOr<NodePtr> ParseOr() {
    MOE_ASSIGN_OR_RETURN(NodePtr left, ParseAnd());
    while (IsIdent("or")) {
      const uint32_t offset = Offset();
      ++pos_;
      MOE_ASSIGN_OR_RETURN(NodePtr right, ParseAnd());
      left = MakeBinary("or", std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseAnd() {
    MOE_ASSIGN_OR_RETURN(NodePtr left, ParseNot());
    while (IsIdent("and")) {
      const uint32_t offset = Offset();
      ++pos_;
      MOE_ASSIGN_OR_RETURN(NodePtr right, ParseNot());
      left = MakeBinary("and", std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseNot() {
    if (IsIdent("not")) {
      DepthGuard guard(this);
      if (guard.exceeded()) return Error("expression nested too deeply");
      NodePtr node = MakeNode(NodeType::kUnary, Offset());
      node->str = "not";
      ++pos_;
      MOE_ASSIGN_OR_RETURN(node->a, ParseNot());
      return node;
    }
    return ParseComparison();
  }

  absl::StatusOr<NodePtr> ParseComparison() {
    MOE_ASSIGN_OR_RETURN(NodePtr left, ParseAdditive());
    while (true) {
      const uint32_t offset = Offset();
      std::string op;
      if (IsIdent("not") && IsIdent("in", 1)) {
        op = "not in";
        pos_ += 2;
      } else if (IsIdent("in")) {
        op = "in";
        ++pos_;
      } else if (Is(TokenType::kComparison)) {
        op = tokens_[pos_++].value;
      } else {
        break;
      }
      MOE_ASSIGN_OR_RETURN(NodePtr right, ParseAdditive());
      left = MakeBinary(std::move(op), std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseAdditive() {
    MOE_ASSIGN_OR_RETURN(NodePtr left, ParseMultiplicative());
    while (Is(TokenType::kAdditive)) {
      const uint32_t offset = Offset();
      std::string op = tokens_[pos_++].value;
      MOE_ASSIGN_OR_RETURN(NodePtr right, ParseMultiplicative());
      left = MakeBinary(std::move(op), std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseMultiplicative() {
    MOE_ASSIGN_OR_RETURN(NodePtr left, ParsePower());
    while (Is(TokenType::kMultiplicative)) {
      const uint32_t offset = Offset();
      std::string op = tokens_[pos_++].value;
      MOE_ASSIGN_OR_RETURN(NodePtr right, ParsePower());
      left = MakeBinary(std::move(op), std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParsePower() {
    MOE_ASSIGN_OR_RETURN(NodePtr left, ParseTest());
    while (Is(TokenType::kPower)) {
      const uint32_t offset = Offset();
      ++pos_;
      MOE_ASSIGN_OR_RETURN(NodePtr right, ParseTest());
      left = MakeBinary("**", std::move(left), std::move(right), offset);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseTest() {
    MOE_ASSIGN_OR_RETURN(NodePtr operand, ParseFilter());
    while (IsIdent("is")) {
      NodePtr node = MakeNode(NodeType::kTest, Offset());
      ++pos_;
      if (IsIdent("not")) {
        node->flag = true;
        ++pos_;
      }
      if (!Is(TokenType::kIdentifier)) return Error("expected a test name after 'is'");
      node->str = tokens_[pos_++].value;
      if (Is(TokenType::kOpenParen)) {
        MOE_RETURN_IF_ERROR(ParseArgs(/*parameters=*/false, &node->list));
      } else if (Is(TokenType::kNumber) || Is(TokenType::kString)) {
        MOE_ASSIGN_OR_RETURN(NodePtr arg, ParsePrimary());
        node->list.push_back(std::move(arg));
      }
      node->a = std::move(operand);
      operand = std::move(node);
    }
    return operand;
  }

  absl::StatusOr<NodePtr> ParseFilterName() {
    if (!Is(TokenType::kIdentifier)) return Error("expected a filter name");
    NodePtr name = MakeNode(NodeType::kIdentifier, Offset());
    name->str = tokens_[pos_++].value;
    if (!Is(TokenType::kOpenParen)) return name;
    NodePtr call = MakeNode(NodeType::kCall, name->offset);
    call->a = std::move(name);
    MOE_RETURN_IF_ERROR(ParseArgs(/*parameters=*/false, &call->list));
    return call;
  }

  absl::StatusOr<NodePtr> ParseFilter() {
    MOE_ASSIGN_OR_RETURN(NodePtr operand, ParseUnarySign());
    while (Is(TokenType::kPipe)) {
      NodePtr node = MakeNode(NodeType::kFilter, Offset());
      ++pos_;
      MOE_ASSIGN_OR_RETURN(node->b, ParseFilterName());
      node->a = std::move(operand);
      operand = std::move(node);
    }
    return operand;
  }

  absl::StatusOr<NodePtr> ParseUnarySign() {
    const Token* t = Cur();
    if (t != nullptr && (t->type == TokenType::kUnary || t->type == TokenType::kAdditive) &&
        (t->value == "-" || t->value == "+")) {
      DepthGuard guard(this);
      if (guard.exceeded()) return Error("expression nested too deeply");
      NodePtr node = MakeNode(NodeType::kUnary, t->offset);
      node->str = t->value;
      ++pos_;
      MOE_ASSIGN_OR_RETURN(node->a, ParseUnarySign());
      return node;
    }
    return ParsePostfix();
  }

  // primary ( .name | [index or slice] | (args) )*
  absl::StatusOr<NodePtr> ParsePostfix() {
    MOE_ASSIGN_OR_RETURN(NodePtr object, ParsePrimary());
    while (true) {
      if (Is(TokenType::kDot) || Is(TokenType::kOpenBracket)) {
        const bool computed = Is(TokenType::kOpenBracket);
        NodePtr node = MakeNode(NodeType::kMember, object->offset);
        ++pos_;
        node->flag = computed;
        if (computed) {
          MOE_ASSIGN_OR_RETURN(node->b, ParseSubscript());
          MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseBracket, "']'"));
        } else {
          MOE_ASSIGN_OR_RETURN(node->b, ParsePrimary());
          if (node->b->type != NodeType::kIdentifier && node->b->type != NodeType::kIntLiteral) {
            return Error("expected a name or an integer after '.'");
          }
        }
        node->a = std::move(object);
        object = std::move(node);
      } else if (Is(TokenType::kOpenParen)) {
        NodePtr node = MakeNode(NodeType::kCall, object->offset);
        MOE_RETURN_IF_ERROR(ParseArgs(/*parameters=*/false, &node->list));
        node->a = std::move(object);
        object = std::move(node);
      } else {
        return object;
      }
    }
  }

  absl::StatusOr<NodePtr> ParseSubscript() {
    const uint32_t offset = Offset();
    std::vector<NodePtr> parts;
    bool is_slice = false;
    while (!Is(TokenType::kCloseBracket)) {
      if (pos_ >= tokens_.size()) return Error("unexpected end of template, expected ']'");
      if (Is(TokenType::kColon)) {
        parts.push_back(nullptr);
        ++pos_;
        is_slice = true;
      } else {
        MOE_ASSIGN_OR_RETURN(NodePtr part, ParseExpression());
        parts.push_back(std::move(part));
        if (Is(TokenType::kColon)) {
          ++pos_;
          is_slice = true;
        }
      }
    }
    if (parts.empty()) return Error("expected an index or a slice");
    if (!is_slice) {
      if (parts.size() != 1) return Error("expected ']'");
      return std::move(parts[0]);
    }
    if (parts.size() > 3) return Error("a slice takes at most 3 parts");
    NodePtr slice = MakeNode(NodeType::kSlice, offset);
    if (parts.size() > 0) slice->a = std::move(parts[0]);
    if (parts.size() > 1) slice->b = std::move(parts[1]);
    if (parts.size() > 2) slice->c = std::move(parts[2]);
    return slice;
  }

  // (a, b=1, *c, **d): call arguments, or macro parameters (names with optional defaults).
  absl::Status ParseArgs(bool parameters, NodeList* out) {
    MOE_RETURN_IF_ERROR(Expect(TokenType::kOpenParen, "'('"));
    bool saw_keyword = false;
    while (!Is(TokenType::kCloseParen)) {
      if (pos_ >= tokens_.size()) return Error("unexpected end of template, expected ')'");
      const uint32_t offset = Offset();
      const bool kw_spread = Is(TokenType::kPower);
      const bool spread = Is(TokenType::kMultiplicative) && tokens_[pos_].value == "*";
      if (parameters && (kw_spread || spread)) {
        return Error("argument unpacking is not allowed in parameters");
      }
      NodePtr arg;
      if (kw_spread || spread) {
        ++pos_;
        arg = MakeNode(kw_spread ? NodeType::kKeywordSpread : NodeType::kSpread, offset);
        MOE_ASSIGN_OR_RETURN(arg->a, ParseExpression());
      } else {
        MOE_ASSIGN_OR_RETURN(arg, ParseExpression());
        if (Is(TokenType::kEquals)) {
          ++pos_;
          if (arg->type != NodeType::kIdentifier) return Error("expected a name before '='");
          NodePtr kw = MakeNode(NodeType::kKeywordArg, offset);
          kw->str = arg->str;
          MOE_ASSIGN_OR_RETURN(kw->a, ParseExpression());
          arg = std::move(kw);
          saw_keyword = true;
        } else if (parameters && arg->type != NodeType::kIdentifier) {
          return Error("expected a parameter name");
        } else if (saw_keyword) {
          return Error(parameters ? "non-default parameter follows default parameter"
                                  : "positional argument follows keyword argument");
        }
      }
      out->push_back(std::move(arg));
      if (Is(TokenType::kComma)) {
        ++pos_;
      } else if (!Is(TokenType::kCloseParen)) {
        return Error("expected ',' or ')'");
      }
    }
    ++pos_;  // )
    return absl::OkStatus();
  }

  absl::StatusOr<NodePtr> ParsePrimary() {
    DepthGuard guard(this);
    if (guard.exceeded()) return Error("expression nested too deeply");
    if (pos_ >= tokens_.size()) return Error("unexpected end of template");
    const Token& t = tokens_[pos_++];
    switch (t.type) {
      case TokenType::kNumber: {
        if (t.value.find('.') != std::string::npos) {
          NodePtr node = MakeNode(NodeType::kFloatLiteral, t.offset);
          node->float_value = std::strtod(t.value.c_str(), nullptr);
          return node;
        }
        NodePtr node = MakeNode(NodeType::kIntLiteral, t.offset);
        int64_t v = 0;
        const char* begin = t.value.data() + (t.value[0] == '+' ? 1 : 0);
        auto res = std::from_chars(begin, t.value.data() + t.value.size(), v);
        if (res.ec != std::errc()) {
          // Out of int64 range: keep it as a float, as JavaScript numbers would.
          node->type = NodeType::kFloatLiteral;
          node->float_value = std::strtod(t.value.c_str(), nullptr);
        }
        node->int_value = v;
        return node;
      }
      case TokenType::kString: {
        NodePtr node = MakeNode(NodeType::kStringLiteral, t.offset);
        node->str = t.value;
        while (Is(TokenType::kString)) node->str += tokens_[pos_++].value;  // 'a' 'b' == 'ab'
        return node;
      }
      case TokenType::kIdentifier: {
        NodePtr node = MakeNode(NodeType::kIdentifier, t.offset);
        node->str = t.value;
        return node;
      }
      case TokenType::kOpenParen: {
        MOE_ASSIGN_OR_RETURN(NodePtr inner, ParseExpressionSequence(/*primary=*/false));
        MOE_RETURN_IF_ERROR(Expect(TokenType::kCloseParen, "')'"));
        return inner;
      }
      case TokenType::kOpenBracket: {
        NodePtr node = MakeNode(NodeType::kArrayLiteral, t.offset);
        while (!Is(TokenType::kCloseBracket)) {
          if (pos_ >= tokens_.size()) return Error("unexpected end of template, expected ']'");
          MOE_ASSIGN_OR_RETURN(NodePtr item, ParseExpression());
          node->list.push_back(std::move(item));
          if (Is(TokenType::kComma)) {
            ++pos_;
          } else if (!Is(TokenType::kCloseBracket)) {
            return Error("expected ',' or ']'");
          }
        }
        ++pos_;
        return node;
      }
      case TokenType::kOpenBrace: {
        NodePtr node = MakeNode(NodeType::kObjectLiteral, t.offset);
        while (!Is(TokenType::kCloseBrace)) {
          if (pos_ >= tokens_.size()) return Error("unexpected end of template, expected '}'");
          MOE_ASSIGN_OR_RETURN(NodePtr key, ParseExpression());
          MOE_RETURN_IF_ERROR(Expect(TokenType::kColon, "':'"));
          MOE_ASSIGN_OR_RETURN(NodePtr value, ParseExpression());
          node->list.push_back(std::move(key));
          node->list.push_back(std::move(value));
          if (Is(TokenType::kComma)) {
            ++pos_;
          } else if (!Is(TokenType::kCloseBrace)) {
            return Error("expected ',' or '}'");
          }
        }
        ++pos_;
        return node;
      }
      default:
        --pos_;
        return Error(absl::StrCat("unexpected '", t.value, "'"));
    }
  }

  const std::vector<Token>& tokens_;
  std::string_view source_;
  int max_depth_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<NodeList> Parse(const std::vector<Token>& tokens, std::string_view source,
                               int max_depth) {
  Parser parser(tokens, source, max_depth);
  return parser.ParseProgram();
}

}  // namespace moe::model::jinja
