#include "jinja_parser.h"

#include <algorithm>
#include <initializer_list>
#include <string_view>

namespace bpt::jinja {
namespace {

using T = Token::Type;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  StatusOr<Body> Run() {
    Body body;
    BPT_RETURN_IF_ERROR(Subparse(body, {}));
    if (Cur().type != T::kEof) return Error("unexpected '" + Describe(Cur()) + "'");
    return body;
  }

 private:
  const Token& Cur() const { return t_[pos_]; }
  const Token& Peek(size_t n = 1) const { return t_[std::min(pos_ + n, t_.size() - 1)]; }
  void Next() {
    if (t_[pos_].type != T::kEof) ++pos_;
  }
  bool IsOp(std::string_view op) const { return Cur().type == T::kOp && Cur().value == op; }
  bool IsName(std::string_view name) const { return Cur().type == T::kName && Cur().value == name; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }

  static std::string Describe(const Token& t) {
    switch (t.type) {
      case T::kText: return "text";
      case T::kVarBegin: return "{{";
      case T::kVarEnd: return "}}";
      case T::kBlockBegin: return "{%";
      case T::kBlockEnd: return "%}";
      case T::kEof: return "end of template";
      case T::kString: return "string";
      default: return t.value;
    }
  }

  Status Error(const std::string& message, int line = -1) const {
    return InvalidArgument("line " + std::to_string(line < 0 ? Cur().line : line) + ": " + message);
  }
  Status ExpectOp(std::string_view op) {
    if (SkipOp(op)) return OkStatus();
    return Error("expected '" + std::string(op) + "', got '" + Describe(Cur()) + "'");
  }
  Status ExpectBlockEnd() {
    if (Cur().type == T::kBlockEnd) {
      Next();
      return OkStatus();
    }
    return Error("expected end of block tag, got '" + Describe(Cur()) + "'");
  }
  StatusOr<std::string> ExpectName() {
    if (Cur().type != T::kName) return Error("expected a name, got '" + Describe(Cur()) + "'");
    std::string name = Cur().value;
    Next();
    return name;
  }

  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };
  Status CheckDepth() const {
    return depth_ > kMaxNesting ? Error("nesting deeper than " + std::to_string(kMaxNesting) + " levels")
                                : OkStatus();
  }

  static StmtPtr NewStmt(Stmt::Kind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  // Statements until a block tag whose first name is one of `ends` (left unconsumed, after `{%`).
  Status Subparse(Body& body, std::initializer_list<std::string_view> ends) {
    DepthGuard guard(depth_);
    BPT_RETURN_IF_ERROR(CheckDepth());
    while (true) {
      const Token& tok = Cur();
      if (tok.type == T::kEof) {
        if (ends.size() == 0) return OkStatus();
        return Error("unexpected end of template, expected '" + std::string(*ends.begin()) + "'");
      }
      if (tok.type == T::kText) {
        auto s = NewStmt(Stmt::Kind::kText, tok.line);
        s->text = tok.value;
        body.push_back(std::move(s));
        Next();
      } else if (tok.type == T::kVarBegin) {
        const int line = tok.line;
        Next();
        auto s = NewStmt(Stmt::Kind::kOutput, line);
        BPT_ASSIGN_OR_RETURN(s->expr, ParseTuple(true, {}));
        if (Cur().type != T::kVarEnd) return Error("expected end of print statement, got '" + Describe(Cur()) + "'");
        Next();
        body.push_back(std::move(s));
      } else if (tok.type == T::kBlockBegin) {
        const Token& name = Peek();
        if (name.type == T::kName)
          for (std::string_view end : ends)
            if (name.value == end) {
              Next();  // `{%`; the caller reads the name
              return OkStatus();
            }
        Next();
        BPT_ASSIGN_OR_RETURN(StmtPtr s, Statement());
        body.push_back(std::move(s));
      } else {
        return Error("unexpected '" + Describe(tok) + "'");
      }
    }
  }

  StatusOr<StmtPtr> Statement() {
    const int line = Cur().line;
    if (Cur().type != T::kName) return Error("expected a statement name, got '" + Describe(Cur()) + "'");
    const std::string name = Cur().value;
    Next();
    if (name == "if") return If(line);
    if (name == "for") return For(line);
    if (name == "set") return Set(line);
    if (name == "macro") return Macro(line);
    if (name == "call") return CallBlock(line);
    if (name == "filter") return FilterBlock(line);
    if (name == "with") return With(line);
    if (name == "generation") return Simple(line, Stmt::Kind::kGeneration, "endgeneration");
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) return Error("'" + name + "' outside of a loop", line);
      BPT_RETURN_IF_ERROR(ExpectBlockEnd());
      return NewStmt(name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, line);
    }
    if (name == "extends" || name == "include" || name == "import" || name == "from" || name == "block")
      return Error("'" + name + "' is not supported in chat templates (there is only one template)", line);
    return Error("unknown tag '" + name + "'", line);
  }

  // Reads `{% end... %}` after Subparse stopped at it.
  Status EndTag(std::string_view end) {
    if (!SkipName(end)) return Error("expected '" + std::string(end) + "'");
    return ExpectBlockEnd();
  }

  StatusOr<StmtPtr> Simple(int line, Stmt::Kind kind, std::string_view end) {
    BPT_RETURN_IF_ERROR(ExpectBlockEnd());
    auto s = NewStmt(kind, line);
    s->bodies.emplace_back();
    BPT_RETURN_IF_ERROR(Subparse(s->bodies[0], {end}));
    BPT_RETURN_IF_ERROR(EndTag(end));
    return s;
  }

  StatusOr<StmtPtr> If(int line) {
    auto s = NewStmt(Stmt::Kind::kIf, line);
    while (true) {
      BPT_ASSIGN_OR_RETURN(ExprPtr cond, ParseTuple(false, {}));
      s->conditions.push_back(std::move(cond));
      BPT_RETURN_IF_ERROR(ExpectBlockEnd());
      s->bodies.emplace_back();
      BPT_RETURN_IF_ERROR(Subparse(s->bodies.back(), {"elif", "else", "endif"}));
      if (SkipName("elif")) continue;
      if (SkipName("else")) {
        BPT_RETURN_IF_ERROR(ExpectBlockEnd());
        s->bodies.emplace_back();
        BPT_RETURN_IF_ERROR(Subparse(s->bodies.back(), {"endif"}));
      }
      BPT_RETURN_IF_ERROR(EndTag("endif"));
      return s;
    }
  }

  StatusOr<Target> AssignTarget(bool with_namespace) {
    Target target;
    const bool parenthesized = SkipOp("(");
    BPT_ASSIGN_OR_RETURN(std::string first, ExpectName());
    target.names.push_back(first);
    if (with_namespace && !parenthesized && IsOp(".")) {
      Next();
      BPT_ASSIGN_OR_RETURN(target.attribute, ExpectName());
      return target;
    }
    while (SkipOp(",")) {
      target.unpack = true;
      if (Cur().type != T::kName) break;
      BPT_ASSIGN_OR_RETURN(std::string n, ExpectName());
      target.names.push_back(n);
    }
    if (parenthesized) BPT_RETURN_IF_ERROR(ExpectOp(")"));
    return target;
  }

  StatusOr<StmtPtr> For(int line) {
    auto s = NewStmt(Stmt::Kind::kFor, line);
    BPT_ASSIGN_OR_RETURN(s->target, AssignTarget(false));
    if (!SkipName("in")) return Error("expected 'in', got '" + Describe(Cur()) + "'");
    BPT_ASSIGN_OR_RETURN(s->expr, ParseTuple(false, {"recursive"}));
    if (SkipName("if")) {
      BPT_ASSIGN_OR_RETURN(s->condition, Expression(true));
    }
    if (IsName("recursive")) return Error("recursive loops are not supported");
    BPT_RETURN_IF_ERROR(ExpectBlockEnd());
    s->bodies.resize(2);
    ++loop_depth_;
    Status st = Subparse(s->bodies[0], {"endfor", "else"});
    --loop_depth_;
    BPT_RETURN_IF_ERROR(st);
    if (SkipName("else")) {
      BPT_RETURN_IF_ERROR(ExpectBlockEnd());
      BPT_RETURN_IF_ERROR(Subparse(s->bodies[1], {"endfor"}));
    }
    BPT_RETURN_IF_ERROR(EndTag("endfor"));
    return s;
  }

  Status FilterChain(std::vector<ExprPtr>& filters) {
    do {
      BPT_ASSIGN_OR_RETURN(ExprPtr f, Filter(nullptr));
      filters.push_back(std::move(f));
    } while (SkipOp("|"));
    return OkStatus();
  }

  StatusOr<StmtPtr> Set(int line) {
    auto s = NewStmt(Stmt::Kind::kSet, line);
    BPT_ASSIGN_OR_RETURN(s->target, AssignTarget(true));
    if (SkipOp("=")) {
      BPT_ASSIGN_OR_RETURN(s->expr, ParseTuple(true, {}));
      BPT_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (s->target.unpack || !s->target.attribute.empty()) return Error("expected '='");
    s->kind = Stmt::Kind::kSetBlock;
    if (SkipOp("|")) BPT_RETURN_IF_ERROR(FilterChain(s->filters));
    BPT_RETURN_IF_ERROR(ExpectBlockEnd());
    s->bodies.emplace_back();
    BPT_RETURN_IF_ERROR(Subparse(s->bodies[0], {"endset"}));
    BPT_RETURN_IF_ERROR(EndTag("endset"));
    return s;
  }

  Status Params(std::vector<Param>& params) {
    BPT_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (!params.empty()) BPT_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(")")) break;
      Param p;
      BPT_ASSIGN_OR_RETURN(p.name, ExpectName());
      if (SkipOp("=")) {
        BPT_ASSIGN_OR_RETURN(p.default_value, Expression(true));
      } else if (!params.empty() && params.back().default_value) {
        return Error("parameter '" + p.name + "' without a default follows one with a default");
      }
      params.push_back(std::move(p));
    }
    Next();
    return OkStatus();
  }

  StatusOr<StmtPtr> Macro(int line) {
    auto s = NewStmt(Stmt::Kind::kMacro, line);
    BPT_ASSIGN_OR_RETURN(s->name, ExpectName());
    BPT_RETURN_IF_ERROR(Params(s->params));
    BPT_RETURN_IF_ERROR(ExpectBlockEnd());
    s->bodies.emplace_back();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // a loop around the definition is not around the body
    Status st = Subparse(s->bodies[0], {"endmacro"});
    loop_depth_ = saved_loops;
    BPT_RETURN_IF_ERROR(st);
    BPT_RETURN_IF_ERROR(EndTag("endmacro"));
    return s;
  }

  StatusOr<StmtPtr> CallBlock(int line) {
    auto s = NewStmt(Stmt::Kind::kCallBlock, line);
    if (IsOp("(")) BPT_RETURN_IF_ERROR(Params(s->params));
    BPT_ASSIGN_OR_RETURN(s->expr, Expression(true));
    if (s->expr->kind != Expr::Kind::kCall) return Error("expected a call after 'call'", line);
    BPT_RETURN_IF_ERROR(ExpectBlockEnd());
    s->bodies.emplace_back();
    BPT_RETURN_IF_ERROR(Subparse(s->bodies[0], {"endcall"}));
    BPT_RETURN_IF_ERROR(EndTag("endcall"));
    return s;
  }

  StatusOr<StmtPtr> FilterBlock(int line) {
    auto s = NewStmt(Stmt::Kind::kFilterBlock, line);
    BPT_RETURN_IF_ERROR(FilterChain(s->filters));
    BPT_RETURN_IF_ERROR(ExpectBlockEnd());
    s->bodies.emplace_back();
    BPT_RETURN_IF_ERROR(Subparse(s->bodies[0], {"endfilter"}));
    BPT_RETURN_IF_ERROR(EndTag("endfilter"));
    return s;
  }

  StatusOr<StmtPtr> With(int line) {
    auto s = NewStmt(Stmt::Kind::kWith, line);
    while (Cur().type != T::kBlockEnd) {
      if (!s->params.empty()) BPT_RETURN_IF_ERROR(ExpectOp(","));
      Param p;
      BPT_ASSIGN_OR_RETURN(p.name, ExpectName());
      BPT_RETURN_IF_ERROR(ExpectOp("="));
      BPT_ASSIGN_OR_RETURN(p.default_value, Expression(true));
      s->params.push_back(std::move(p));
    }
    Next();
    s->bodies.emplace_back();
    BPT_RETURN_IF_ERROR(Subparse(s->bodies[0], {"endwith"}));
    BPT_RETURN_IF_ERROR(EndTag("endwith"));
    return s;
  }

  // ---- expressions ----

  ExprPtr Node(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  // Every node with operands is finished here: one nested past kMaxNesting is refused. Chains
  // (`a + b + ...`, `x.a.b...`, `x | f | g...`) nest without the parser recursing, and the tree
  // is checked, evaluated and destroyed recursively.
  StatusOr<ExprPtr> Built(ExprPtr e) {
    int tallest = 0;
    for (const auto& item : e->items)
      if (item) tallest = std::max(tallest, item->height);
    for (const auto& a : e->args) tallest = std::max(tallest, a.value->height);
    e->height = tallest + 1;
    if (e->height > kMaxNesting) return Error("nesting deeper than " + std::to_string(kMaxNesting) + " levels", e->line);
    return e;
  }
  StatusOr<ExprPtr> Binary(std::string op, ExprPtr l, ExprPtr r, int line) {
    ExprPtr e = Node(Expr::Kind::kBinary, line);
    e->op = std::move(op);
    e->items.push_back(std::move(l));
    e->items.push_back(std::move(r));
    return Built(std::move(e));
  }

  bool TupleEnds(std::initializer_list<std::string_view> extra) const {
    const Token& c = Cur();
    if (c.type == T::kVarEnd || c.type == T::kBlockEnd || c.type == T::kEof) return true;
    if (c.type == T::kOp && (c.value == ")" || c.value == "]" || c.value == "}")) return true;
    if (c.type == T::kName)
      for (std::string_view e : extra)
        if (c.value == e) return true;
    return false;
  }

  StatusOr<ExprPtr> ParseTuple(bool with_condexpr, std::initializer_list<std::string_view> extra,
                               bool explicit_parentheses = false) {
    const int line = Cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) BPT_RETURN_IF_ERROR(ExpectOp(","));
      if (TupleEnds(extra)) break;
      BPT_ASSIGN_OR_RETURN(ExprPtr e, Expression(with_condexpr));
      items.push_back(std::move(e));
      if (IsOp(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) return Error("expected an expression, got '" + Describe(Cur()) + "'");
    }
    ExprPtr e = Node(Expr::Kind::kList, line);
    e->tuple = true;
    e->items = std::move(items);
    return Built(std::move(e));
  }

  StatusOr<ExprPtr> Expression(bool with_condexpr) {
    DepthGuard guard(depth_);
    BPT_RETURN_IF_ERROR(CheckDepth());
    if (!with_condexpr) return Or();
    BPT_ASSIGN_OR_RETURN(ExprPtr e, Or());
    while (IsName("if")) {
      const int line = Cur().line;
      Next();
      ExprPtr c = Node(Expr::Kind::kCond, line);
      BPT_ASSIGN_OR_RETURN(ExprPtr cond, Or());
      ExprPtr otherwise;
      if (SkipName("else")) {
        BPT_ASSIGN_OR_RETURN(otherwise, Expression(true));
      }
      c->items.push_back(std::move(cond));
      c->items.push_back(std::move(e));
      c->items.push_back(std::move(otherwise));
      BPT_ASSIGN_OR_RETURN(e, Built(std::move(c)));
    }
    return e;
  }

  StatusOr<ExprPtr> Or() {
    BPT_ASSIGN_OR_RETURN(ExprPtr l, And());
    while (IsName("or")) {
      const int line = Cur().line;
      Next();
      BPT_ASSIGN_OR_RETURN(ExprPtr r, And());
      BPT_ASSIGN_OR_RETURN(l, Binary("or", std::move(l), std::move(r), line));
    }
    return l;
  }

  StatusOr<ExprPtr> And() {
    BPT_ASSIGN_OR_RETURN(ExprPtr l, Not());
    while (IsName("and")) {
      const int line = Cur().line;
      Next();
      BPT_ASSIGN_OR_RETURN(ExprPtr r, Not());
      BPT_ASSIGN_OR_RETURN(l, Binary("and", std::move(l), std::move(r), line));
    }
    return l;
  }

  StatusOr<ExprPtr> Not() {
    if (IsName("not")) {
      DepthGuard guard(depth_);
      BPT_RETURN_IF_ERROR(CheckDepth());
      ExprPtr e = Node(Expr::Kind::kUnary, Cur().line);
      Next();
      e->op = "not";
      BPT_ASSIGN_OR_RETURN(ExprPtr operand, Not());
      e->items.push_back(std::move(operand));
      return Built(std::move(e));
    }
    return Compare();
  }

  StatusOr<ExprPtr> Compare() {
    BPT_ASSIGN_OR_RETURN(ExprPtr l, Math1());
    ExprPtr chain;
    while (true) {
      std::string op;
      if (Cur().type == T::kOp && (Cur().value == "==" || Cur().value == "!=" || Cur().value == "<" ||
                                   Cur().value == ">" || Cur().value == "<=" || Cur().value == ">=")) {
        op = Cur().value;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Peek().type == T::kName && Peek().value == "in") {
        op = "not in";
        Next();
        Next();
      } else {
        break;
      }
      if (!chain) {
        chain = Node(Expr::Kind::kCompare, l->line);
        chain->items.push_back(std::move(l));
      }
      BPT_ASSIGN_OR_RETURN(ExprPtr r, Math1());
      chain->ops.push_back(op);
      chain->items.push_back(std::move(r));
    }
    if (chain) return Built(std::move(chain));
    return l;
  }

  StatusOr<ExprPtr> Math1() {
    BPT_ASSIGN_OR_RETURN(ExprPtr l, Concat());
    while (IsOp("+") || IsOp("-")) {
      const std::string op = Cur().value;
      const int line = Cur().line;
      Next();
      BPT_ASSIGN_OR_RETURN(ExprPtr r, Concat());
      BPT_ASSIGN_OR_RETURN(l, Binary(op, std::move(l), std::move(r), line));
    }
    return l;
  }

  StatusOr<ExprPtr> Concat() {
    BPT_ASSIGN_OR_RETURN(ExprPtr l, Math2());
    while (IsOp("~")) {
      const int line = Cur().line;
      Next();
      BPT_ASSIGN_OR_RETURN(ExprPtr r, Math2());
      BPT_ASSIGN_OR_RETURN(l, Binary("~", std::move(l), std::move(r), line));
    }
    return l;
  }

  StatusOr<ExprPtr> Math2() {
    BPT_ASSIGN_OR_RETURN(ExprPtr l, Pow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const std::string op = Cur().value;
      const int line = Cur().line;
      Next();
      BPT_ASSIGN_OR_RETURN(ExprPtr r, Pow());
      BPT_ASSIGN_OR_RETURN(l, Binary(op, std::move(l), std::move(r), line));
    }
    return l;
  }

  StatusOr<ExprPtr> Pow() {
    BPT_ASSIGN_OR_RETURN(ExprPtr l, Unary(true));
    while (IsOp("**")) {
      const int line = Cur().line;
      Next();
      BPT_ASSIGN_OR_RETURN(ExprPtr r, Unary(true));
      BPT_ASSIGN_OR_RETURN(l, Binary("**", std::move(l), std::move(r), line));
    }
    return l;
  }

  StatusOr<ExprPtr> Unary(bool with_filter) {
    DepthGuard guard(depth_);
    BPT_RETURN_IF_ERROR(CheckDepth());
    ExprPtr e;
    if (IsOp("-") || IsOp("+")) {
      e = Node(Expr::Kind::kUnary, Cur().line);
      e->op = Cur().value;
      Next();
      BPT_ASSIGN_OR_RETURN(ExprPtr operand, Unary(false));
      e->items.push_back(std::move(operand));
      BPT_ASSIGN_OR_RETURN(e, Built(std::move(e)));
    } else {
      BPT_ASSIGN_OR_RETURN(e, Primary());
    }
    BPT_ASSIGN_OR_RETURN(e, Postfix(std::move(e)));
    if (!with_filter) return e;
    while (true) {
      if (IsOp("|")) {
        Next();
        BPT_ASSIGN_OR_RETURN(e, Filter(std::move(e)));
      } else if (IsName("is")) {
        Next();
        BPT_ASSIGN_OR_RETURN(e, Test(std::move(e)));
      } else if (IsOp("(")) {
        BPT_ASSIGN_OR_RETURN(e, Call(std::move(e)));
      } else {
        return e;
      }
    }
  }

  StatusOr<ExprPtr> Primary() {
    const Token& tok = Cur();
    const int line = tok.line;
    ExprPtr e;
    switch (tok.type) {
      case T::kName: {
        const std::string& n = tok.value;
        if (n == "true" || n == "True" || n == "false" || n == "False") {
          e = Node(Expr::Kind::kLiteral, line);
          e->value = Value::Bool(n == "true" || n == "True");
        } else if (n == "none" || n == "None") {
          e = Node(Expr::Kind::kLiteral, line);
          e->value = Value::None();
        } else {
          e = Node(Expr::Kind::kName, line);
          e->name = n;
        }
        Next();
        return e;
      }
      case T::kString: {
        std::string s;
        while (Cur().type == T::kString) {  // adjacent literals join, as in Python
          s += Cur().value;
          Next();
        }
        e = Node(Expr::Kind::kLiteral, line);
        e->value = Value::String(std::move(s));
        return e;
      }
      case T::kInt:
      case T::kFloat:
        e = Node(Expr::Kind::kLiteral, line);
        e->value = tok.type == T::kInt ? Value::Int(tok.int_value) : Value::Float(tok.float_value);
        Next();
        return e;
      case T::kOp:
        if (tok.value == "(") {
          Next();
          BPT_ASSIGN_OR_RETURN(e, ParseTuple(true, {}, true));
          BPT_RETURN_IF_ERROR(ExpectOp(")"));
          return e;
        }
        if (tok.value == "[") {
          Next();
          e = Node(Expr::Kind::kList, line);
          while (!IsOp("]")) {
            if (!e->items.empty()) BPT_RETURN_IF_ERROR(ExpectOp(","));
            if (IsOp("]")) break;
            BPT_ASSIGN_OR_RETURN(ExprPtr item, Expression(true));
            e->items.push_back(std::move(item));
          }
          Next();
          return Built(std::move(e));
        }
        if (tok.value == "{") {
          Next();
          e = Node(Expr::Kind::kDict, line);
          while (!IsOp("}")) {
            if (!e->items.empty()) BPT_RETURN_IF_ERROR(ExpectOp(","));
            if (IsOp("}")) break;
            BPT_ASSIGN_OR_RETURN(ExprPtr key, Expression(true));
            BPT_RETURN_IF_ERROR(ExpectOp(":"));
            BPT_ASSIGN_OR_RETURN(ExprPtr value, Expression(true));
            e->items.push_back(std::move(key));
            e->items.push_back(std::move(value));
          }
          Next();
          return Built(std::move(e));
        }
        break;
      default:
        break;
    }
    return Error("unexpected '" + Describe(tok) + "'");
  }

  StatusOr<ExprPtr> Postfix(ExprPtr e) {
    while (true) {
      const int line = Cur().line;
      if (IsOp(".")) {
        Next();
        ExprPtr a = Node(Expr::Kind::kGetAttr, line);
        if (Cur().type == T::kName) {
          a->name = Cur().value;
        } else if (Cur().type == T::kInt) {  // `x.0` is x[0]
          a->kind = Expr::Kind::kGetItem;
          ExprPtr index = Node(Expr::Kind::kLiteral, line);
          index->value = Value::Int(Cur().int_value);
          a->items.push_back(std::move(e));
          a->items.push_back(std::move(index));
          Next();
          BPT_ASSIGN_OR_RETURN(e, Built(std::move(a)));
          continue;
        } else {
          return Error("expected an attribute name after '.'");
        }
        Next();
        a->items.push_back(std::move(e));
        BPT_ASSIGN_OR_RETURN(e, Built(std::move(a)));
      } else if (IsOp("[")) {
        Next();
        BPT_ASSIGN_OR_RETURN(e, Subscript(std::move(e), line));
      } else if (IsOp("(")) {
        BPT_ASSIGN_OR_RETURN(e, Call(std::move(e)));
      } else {
        return e;
      }
    }
  }

  StatusOr<ExprPtr> Subscript(ExprPtr obj, int line) {
    ExprPtr parts[3];
    int colons = 0;
    while (!IsOp("]")) {
      if (IsOp(":")) {
        if (++colons > 2) return Error("too many ':' in a slice");
        Next();
        continue;
      }
      if (parts[colons]) return Error("expected ']' or ':'");
      BPT_ASSIGN_OR_RETURN(parts[colons], Expression(true));
    }
    Next();
    if (colons == 0) {
      if (!parts[0]) return Error("expected an index inside '[]'", line);
      ExprPtr e = Node(Expr::Kind::kGetItem, line);
      e->items.push_back(std::move(obj));
      e->items.push_back(std::move(parts[0]));
      return Built(std::move(e));
    }
    ExprPtr e = Node(Expr::Kind::kSlice, line);
    e->items.push_back(std::move(obj));
    for (auto& p : parts) e->items.push_back(std::move(p));
    return Built(std::move(e));
  }

  Status CallArgs(std::vector<Arg>& args) {
    BPT_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (!args.empty()) BPT_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(")")) break;
      if (IsOp("*") || IsOp("**")) return Error("'*' and '**' arguments are not supported");
      Arg a;
      if (Cur().type == T::kName && Peek().type == T::kOp && Peek().value == "=") {
        a.name = Cur().value;
        Next();
        Next();
      } else if (!args.empty() && !args.back().name.empty()) {
        return Error("a positional argument follows a keyword argument");
      }
      BPT_ASSIGN_OR_RETURN(a.value, Expression(true));
      args.push_back(std::move(a));
    }
    Next();
    return OkStatus();
  }

  StatusOr<ExprPtr> Call(ExprPtr callee) {
    ExprPtr e = Node(Expr::Kind::kCall, Cur().line);
    e->items.push_back(std::move(callee));
    BPT_RETURN_IF_ERROR(CallArgs(e->args));
    return Built(std::move(e));
  }

  StatusOr<ExprPtr> Filter(ExprPtr operand) {
    ExprPtr e = Node(Expr::Kind::kFilter, Cur().line);
    BPT_ASSIGN_OR_RETURN(e->name, ExpectName());
    while (IsOp(".")) {
      Next();
      BPT_ASSIGN_OR_RETURN(std::string part, ExpectName());
      e->name += "." + part;
    }
    if (operand) e->items.push_back(std::move(operand));
    if (IsOp("(")) BPT_RETURN_IF_ERROR(CallArgs(e->args));
    return Built(std::move(e));
  }

  StatusOr<ExprPtr> Test(ExprPtr operand) {
    ExprPtr e = Node(Expr::Kind::kTest, Cur().line);
    e->negated = SkipName("not");
    BPT_ASSIGN_OR_RETURN(e->name, ExpectName());
    e->items.push_back(std::move(operand));
    const Token& c = Cur();
    if (IsOp("(")) {
      BPT_RETURN_IF_ERROR(CallArgs(e->args));
    } else if ((c.type == T::kName || c.type == T::kString || c.type == T::kInt || c.type == T::kFloat ||
                IsOp("[") || IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) return Error("tests cannot be chained with 'is'");
      Arg a;
      BPT_ASSIGN_OR_RETURN(ExprPtr p, Primary());
      BPT_ASSIGN_OR_RETURN(a.value, Postfix(std::move(p)));
      e->args.push_back(std::move(a));
    }
    return Built(std::move(e));
  }

  const std::vector<Token>& t_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

StatusOr<Body> Parse(const std::vector<Token>& tokens) { return Parser(tokens).Run(); }

}  // namespace bpt::jinja
