#include "jinja_template.h"

#include "jinja_builtins.h"
#include "jinja_lexer.h"
#include "jinja_parser.h"

namespace bpt::jinja {
namespace {

// Unknown filters and tests are errors when the template is compiled, as in jinja2.
Status CheckNames(const Expr* e) {
  if (e == nullptr) return OkStatus();
  if (e->kind == Expr::Kind::kFilter && !IsFilter(e->name))
    return InvalidArgument("line " + std::to_string(e->line) + ": no filter named '" + e->name + "'");
  if (e->kind == Expr::Kind::kTest && !IsTest(e->name))
    return InvalidArgument("line " + std::to_string(e->line) + ": no test named '" + e->name + "'");
  for (const auto& item : e->items) BPT_RETURN_IF_ERROR(CheckNames(item.get()));
  for (const auto& arg : e->args) BPT_RETURN_IF_ERROR(CheckNames(arg.value.get()));
  return OkStatus();
}

Status CheckNames(const Body& body) {
  for (const auto& s : body) {
    BPT_RETURN_IF_ERROR(CheckNames(s->expr.get()));
    BPT_RETURN_IF_ERROR(CheckNames(s->condition.get()));
    for (const auto& c : s->conditions) BPT_RETURN_IF_ERROR(CheckNames(c.get()));
    for (const auto& f : s->filters) BPT_RETURN_IF_ERROR(CheckNames(f.get()));
    for (const auto& p : s->params) BPT_RETURN_IF_ERROR(CheckNames(p.default_value.get()));
    for (const auto& b : s->bodies) BPT_RETURN_IF_ERROR(CheckNames(b));
  }
  return OkStatus();
}

enum class Flow { kNormal, kBreak, kContinue };

class Renderer : public Budget {
 public:
  explicit Renderer(const Limits& limits) : limits_(limits) {}

  const Limits& limits() const override { return limits_; }
  Status Spend(int64_t steps) override {
    steps_ += steps;
    if (steps_ > limits_.max_iterations)
      return InvalidArgument("the template ran more than " + std::to_string(limits_.max_iterations) +
                             " steps (loop iterations, macro calls, elements and bytes operations touch; the limit)");
    return OkStatus();
  }
  Status Allocate(size_t bytes) override {
    allocated_ += bytes;
    if (allocated_ > limits_.max_allocated_bytes)
      return InvalidArgument("the template made more than " + std::to_string(limits_.max_allocated_bytes) +
                             " bytes of strings and containers (the limit)");
    return OkStatus();
  }

  StatusOr<std::string> Run(const Body& body, const ValueDict& variables) {
    current_ = std::make_shared<Frame>();
    for (auto& [k, v] : BuiltinGlobals(*this)) Assign(k, v);
    for (const auto& [k, v] : variables) Assign(k, v);
    std::string out;
    BPT_ASSIGN_OR_RETURN(Flow flow, Exec(body, out));
    (void)flow;  // break and continue are parsed only inside loops
    return out;
  }

 private:
  // A scope. Its parent is held while it lives, so the chain is always there to read and ends
  // at the top level (a parent exists before its child: the chain has no cycle).
  struct Frame {
    ValueDict vars;
    std::shared_ptr<Frame> parent;
  };

  // ---- scopes ----

  const Value* Lookup(const std::string& name) const {
    for (const Frame* f = current_.get(); f != nullptr; f = f->parent.get())
      for (const auto& [k, v] : f->vars)
        if (k == name) return &v;
    return nullptr;
  }

  void Assign(const std::string& name, Value v) {
    for (auto& [k, old] : current_->vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    current_->vars.emplace_back(name, std::move(v));
  }

  // Makes a frame whose lookups continue in `parent` the current one; restores the previous
  // one when destroyed.
  class Scope {
   public:
    Scope(Renderer& r, std::shared_ptr<Frame> parent) : r_(r), saved_(std::move(r.current_)) {
      r.current_ = std::make_shared<Frame>();
      r.current_->parent = std::move(parent);
    }
    ~Scope() { r_.current_ = std::move(saved_); }

   private:
    Renderer& r_;
    std::shared_ptr<Frame> saved_;
  };

  // Counts nested evaluation (Eval and Exec) against max_eval_depth.
  class Nested {
   public:
    explicit Nested(Renderer& r) : r_(r) { ++r.eval_depth_; }
    ~Nested() { --r_.eval_depth_; }
    Status Check() const {
      if (r_.eval_depth_ <= r_.limits_.max_eval_depth) return OkStatus();
      return InvalidArgument("the template nests expressions, statements and macro calls deeper than " +
                             std::to_string(r_.limits_.max_eval_depth) + " levels (the limit)");
    }

   private:
    Renderer& r_;
  };

  // Charges a value the template made (not one passed through from an operand) to the byte
  // budget, and refuses one nested past kMaxValueDepth.
  Status Made(const Value& v, const void* passed_a = nullptr, const void* passed_b = nullptr) {
    if (v.depth() > kMaxValueDepth)
      return InvalidArgument("a value nested deeper than " + std::to_string(kMaxValueDepth) + " levels (the limit)");
    const void* storage = v.storage();
    if (storage == nullptr || storage == passed_a || storage == passed_b) return OkStatus();
    return Allocate(v.ShallowBytes());
  }

  static Status At(int line, const Status& s) {
    if (s.ok() || s.message().rfind("line ", 0) == 0) return s;
    return Status(s.code(), "line " + std::to_string(line) + ": " + s.message());
  }

  Status Emit(std::string& out, const std::string& text) {
    if (out.size() + text.size() > limits_.max_output_bytes)
      return InvalidArgument("the output would pass " + std::to_string(limits_.max_output_bytes) +
                             " bytes (the limit)");
    out += text;
    return OkStatus();
  }

  // ---- statements ----

  StatusOr<Flow> Exec(const Body& body, std::string& out) {
    Nested nested(*this);
    BPT_RETURN_IF_ERROR(nested.Check());
    for (const auto& s : body) {
      auto flow = ExecOne(*s, out);
      if (!flow.ok()) return At(s->line, flow.status());
      if (*flow != Flow::kNormal) return *flow;
    }
    return Flow::kNormal;
  }

  StatusOr<Flow> ExecOne(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::kText:
        BPT_RETURN_IF_ERROR(Emit(out, s.text));
        return Flow::kNormal;
      case Stmt::Kind::kOutput: {
        BPT_ASSIGN_OR_RETURN(Value v, Eval(*s.expr));
        BPT_ASSIGN_OR_RETURN(std::string text, ToStr(v, limits_.max_output_bytes));
        BPT_RETURN_IF_ERROR(Emit(out, text));
        return Flow::kNormal;
      }
      case Stmt::Kind::kIf:
        for (size_t i = 0; i < s.conditions.size(); ++i) {
          BPT_ASSIGN_OR_RETURN(Value c, Eval(*s.conditions[i]));
          if (c.Truthy()) return Exec(s.bodies[i], out);
        }
        if (s.bodies.size() > s.conditions.size()) return Exec(s.bodies.back(), out);
        return Flow::kNormal;
      case Stmt::Kind::kFor:
        return For(s, out);
      case Stmt::Kind::kSet: {
        BPT_ASSIGN_OR_RETURN(Value v, Eval(*s.expr));
        BPT_RETURN_IF_ERROR(AssignTarget(s.target, std::move(v)));
        return Flow::kNormal;
      }
      case Stmt::Kind::kSetBlock:
      case Stmt::Kind::kFilterBlock: {
        std::string captured;
        BPT_RETURN_IF_ERROR(Exec(s.bodies[0], captured).status());
        BPT_RETURN_IF_ERROR(Allocate(captured.size()));
        Value v = Value::String(std::move(captured));
        for (const auto& f : s.filters) {
          BPT_ASSIGN_OR_RETURN(v, Filter(*f, v));
        }
        if (s.kind == Stmt::Kind::kSetBlock) {
          Assign(s.target.names[0], std::move(v));
        } else {
          BPT_ASSIGN_OR_RETURN(std::string text, ToStr(v, limits_.max_output_bytes));
          BPT_RETURN_IF_ERROR(Emit(out, text));
        }
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        Assign(s.name, MakeMacro(s, s.params, s.bodies[0], s.name));
        return Flow::kNormal;
      case Stmt::Kind::kCallBlock: {
        const Value caller = MakeMacro(s, s.params, s.bodies[0], "caller");
        BPT_ASSIGN_OR_RETURN(Value v, Call(*s.expr, &caller));
        BPT_ASSIGN_OR_RETURN(std::string text, ToStr(v, limits_.max_output_bytes));
        BPT_RETURN_IF_ERROR(Emit(out, text));
        return Flow::kNormal;
      }
      case Stmt::Kind::kWith: {
        ValueList values;
        for (const auto& p : s.params) {
          BPT_ASSIGN_OR_RETURN(Value v, Eval(*p.default_value));
          values.push_back(std::move(v));
        }
        Scope scope(*this, current_);
        for (size_t i = 0; i < s.params.size(); ++i) Assign(s.params[i].name, values[i]);
        return Exec(s.bodies[0], out);
      }
      case Stmt::Kind::kGeneration:
        return Exec(s.bodies[0], out);
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  Status AssignTarget(const Target& t, Value v) {
    if (!t.attribute.empty()) {
      const Value* ns = Lookup(t.names[0]);
      if (ns == nullptr || !ns->is_namespace())
        return InvalidArgument("cannot assign attribute on non-namespace object '" + t.names[0] + "'");
      if (t.attribute[0] == '_')
        return InvalidArgument("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                               t.attribute + "'. Please rename the attribute.");
      if (v.is_namespace() || v.holds_namespace()) return NamespaceInNamespace();
      for (auto& [k, old] : ns->mutable_namespace())
        if (k == t.attribute) {
          old = std::move(v);
          return OkStatus();
        }
      ns->mutable_namespace().emplace_back(t.attribute, std::move(v));
      return OkStatus();
    }
    if (!t.unpack) {
      Assign(t.names[0], std::move(v));
      return OkStatus();
    }
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, *this));
    if (items.size() != t.names.size())
      return InvalidArgument(items.size() < t.names.size()
                                 ? "not enough values to unpack (expected " + std::to_string(t.names.size()) +
                                       ", got " + std::to_string(items.size()) + ")"
                                 : "too many values to unpack (expected " + std::to_string(t.names.size()) + ")");
    for (size_t i = 0; i < items.size(); ++i) Assign(t.names[i], std::move(items[i]));
    return OkStatus();
  }

  StatusOr<Flow> For(const Stmt& s, std::string& out) {
    BPT_ASSIGN_OR_RETURN(Value iterable, Eval(*s.expr));
    if (iterable.is_none() || iterable.is_number() || iterable.is_callable() || iterable.is_namespace())
      return InvalidArgument("'" + iterable.TypeName() + "' object is not iterable");
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(iterable, *this));
    if (s.condition) {  // the loop filter runs first: loop.length counts what it keeps
      ValueList kept;
      for (auto& item : items) {
        BPT_RETURN_IF_ERROR(Spend(1));
        Scope scope(*this, current_);
        BPT_RETURN_IF_ERROR(AssignTarget(s.target, item));
        BPT_ASSIGN_OR_RETURN(Value keep, Eval(*s.condition));
        if (keep.Truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    auto position = std::make_shared<int64_t>(0);
    const Value cycle = Value::Function("loop.cycle", [position](Arguments& args) -> StatusOr<Value> {
      if (args.positional.empty()) return InvalidArgument("no items for cycling given");
      return args.positional[static_cast<size_t>(*position) % args.positional.size()];
    });
    for (int64_t i = 0; i < n; ++i) {
      *position = i;
      BPT_RETURN_IF_ERROR(Spend(1));
      Scope scope(*this, current_);
      const Value previous = i > 0 ? items[i - 1] : Value::Undefined("there is no previous item");
      const Value next = i + 1 < n ? items[i + 1] : Value::Undefined("there is no next item");
      ValueDict loop = {
          {"index", Value::Int(i + 1)},          {"index0", Value::Int(i)},
          {"revindex", Value::Int(n - i)},       {"revindex0", Value::Int(n - i - 1)},
          {"first", Value::Bool(i == 0)},        {"last", Value::Bool(i == n - 1)},
          {"length", Value::Int(n)},             {"depth", Value::Int(1)},
          {"depth0", Value::Int(0)},             {"previtem", previous},
          {"nextitem", next},
          {"cycle", cycle},
      };
      Assign("loop", Value::Dict(std::move(loop)));
      BPT_RETURN_IF_ERROR(AssignTarget(s.target, items[i]));
      BPT_ASSIGN_OR_RETURN(Flow flow, Exec(s.bodies[0], out));
      if (flow == Flow::kBreak) break;
    }
    if (n == 0) {
      BPT_RETURN_IF_ERROR(Exec(s.bodies[1], out).status());
    }
    return Flow::kNormal;
  }

  // A macro, or a call block's caller: renders `body` in a frame whose lookups continue in the
  // scope it was made in, as jinja2's closures do. That scope is not kept alive by the macro (a
  // namespace holding the macro would hold it, a cycle): once it has ended, a call is refused.
  Value MakeMacro(const Stmt& s, const std::vector<Param>& params, const Body& body, std::string name) {
    const Stmt* stmt = &s;
    const std::vector<Param>* ps = &params;
    const Body* b = &body;
    std::weak_ptr<Frame> scope = current_;
    return Value::Function(name, [this, stmt, ps, b, scope, name](Arguments& args) -> StatusOr<Value> {
      std::shared_ptr<Frame> parent = scope.lock();
      if (parent == nullptr)
        return InvalidArgument("macro '" + name + "' called after the block it was defined in ended (not supported)");
      BPT_RETURN_IF_ERROR(Spend(1));
      if (depth_ >= limits_.max_call_depth)
        return InvalidArgument("macro calls nested deeper than " + std::to_string(limits_.max_call_depth) +
                               " (the limit)");
      if (args.positional.size() > ps->size())
        return InvalidArgument("macro '" + name + "' takes not more than " + std::to_string(ps->size()) +
                               " argument(s)");
      ValueList bound(ps->size());
      std::vector<bool> given(ps->size(), false);
      for (size_t i = 0; i < args.positional.size(); ++i) {
        bound[i] = args.positional[i];
        given[i] = true;
      }
      Value caller;
      for (auto& [k, v] : args.keyword) {
        size_t i = 0;
        while (i < ps->size() && (*ps)[i].name != k) ++i;
        if (i < ps->size()) {
          bound[i] = v;
          given[i] = true;
        } else if (k == "caller") {
          caller = v;
        } else {
          return InvalidArgument("macro '" + name + "' takes no keyword argument '" + k + "'");
        }
      }
      ++depth_;
      Scope frame(*this, std::move(parent));
      if (!caller.is_undefined()) Assign("caller", caller);
      for (size_t i = 0; i < ps->size(); ++i) {
        if (!given[i] && (*ps)[i].default_value) {
          auto d = Eval(*(*ps)[i].default_value);
          if (!d.ok()) {
            --depth_;
            return d.status();
          }
          bound[i] = std::move(*d);
        } else if (!given[i]) {
          bound[i] = Value::Undefined("'" + (*ps)[i].name + "' is undefined");
        }
        Assign((*ps)[i].name, bound[i]);
      }
      std::string out;
      auto flow = Exec(*b, out);
      --depth_;
      if (!flow.ok()) return At(stmt->line, flow.status());
      return Value::String(std::move(out));
    });
  }

  // ---- expressions ----

  StatusOr<Value> Eval(const Expr& e) {
    Nested nested(*this);
    BPT_RETURN_IF_ERROR(At(e.line, nested.Check()));
    auto v = EvalInner(e);
    if (!v.ok()) return At(e.line, v.status());
    return v;
  }

  static Status UndefinedError(const Value& v) { return InvalidArgument(v.str()); }

  StatusOr<Value> EvalInner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName: {
        const Value* v = Lookup(e.name);
        return v != nullptr ? *v : Value::Undefined("'" + e.name + "' is undefined");
      }
      case Expr::Kind::kList: {
        ValueList items;
        for (const auto& item : e.items) {
          BPT_ASSIGN_OR_RETURN(Value v, Eval(*item));
          items.push_back(std::move(v));
        }
        Value list = Value::List(std::move(items), e.tuple);
        BPT_RETURN_IF_ERROR(Made(list));
        return list;
      }
      case Expr::Kind::kDict: {
        ValueDict items;
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          BPT_ASSIGN_OR_RETURN(Value k, Eval(*e.items[i]));
          BPT_ASSIGN_OR_RETURN(Value v, Eval(*e.items[i + 1]));
          if (!k.is_string()) return InvalidArgument("dict keys must be strings, got '" + k.TypeName() + "'");
          BPT_RETURN_IF_ERROR(Spend(static_cast<int64_t>(items.size() / kEntriesPerStep)));  // the scan for k
          bool replaced = false;
          for (auto& [key, old] : items)
            if (key == k.str()) {
              old = v;
              replaced = true;
            }
          if (!replaced) items.emplace_back(k.str(), std::move(v));
        }
        Value dict = Value::Dict(std::move(items));
        BPT_RETURN_IF_ERROR(Made(dict));
        return dict;
      }
      case Expr::Kind::kUnary: {
        BPT_ASSIGN_OR_RETURN(Value v, Eval(*e.items[0]));
        if (e.op == "not") return Value::Bool(!v.Truthy());
        if (v.is_undefined()) return UndefinedError(v);
        if (!v.is_number()) return InvalidArgument("bad operand type for unary " + e.op + ": '" + v.TypeName() + "'");
        if (e.op == "+") return v.is_float() ? v : Value::Int(v.as_int());
        if (v.is_float()) return Value::Float(-v.as_double());
        if (v.as_int() == INT64_MIN) return InvalidArgument("integer overflow");
        return Value::Int(-v.as_int());
      }
      case Expr::Kind::kBinary: {
        BPT_ASSIGN_OR_RETURN(Value a, Eval(*e.items[0]));
        if (e.op == "and") return a.Truthy() ? Eval(*e.items[1]) : a;
        if (e.op == "or") return a.Truthy() ? a : Eval(*e.items[1]);
        BPT_ASSIGN_OR_RETURN(Value b, Eval(*e.items[1]));
        BPT_ASSIGN_OR_RETURN(Value r, Arithmetic(e.op, a, b, *this));
        BPT_RETURN_IF_ERROR(Made(r, a.storage(), b.storage()));
        return r;
      }
      case Expr::Kind::kCompare: {
        BPT_ASSIGN_OR_RETURN(Value left, Eval(*e.items[0]));
        for (size_t i = 0; i < e.ops.size(); ++i) {
          BPT_ASSIGN_OR_RETURN(Value right, Eval(*e.items[i + 1]));
          BPT_ASSIGN_OR_RETURN(bool holds, Compare(e.ops[i], left, right));
          if (!holds) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case Expr::Kind::kCond: {
        BPT_ASSIGN_OR_RETURN(Value c, Eval(*e.items[0]));
        if (c.Truthy()) return Eval(*e.items[1]);
        if (e.items[2]) return Eval(*e.items[2]);
        return Value::Undefined("the inline if expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
      }
      case Expr::Kind::kGetAttr: {
        BPT_ASSIGN_OR_RETURN(Value obj, Eval(*e.items[0]));
        if (obj.is_undefined()) return UndefinedError(obj);
        return GetAttribute(obj, e.name, *this);
      }
      case Expr::Kind::kGetItem: {
        BPT_ASSIGN_OR_RETURN(Value obj, Eval(*e.items[0]));
        BPT_ASSIGN_OR_RETURN(Value key, Eval(*e.items[1]));
        if (obj.is_undefined()) return UndefinedError(obj);
        return GetItem(obj, key, *this);
      }
      case Expr::Kind::kSlice: {
        BPT_ASSIGN_OR_RETURN(Value obj, Eval(*e.items[0]));
        Value parts[3];
        for (int i = 0; i < 3; ++i)
          if (e.items[i + 1]) {
            BPT_ASSIGN_OR_RETURN(parts[i], Eval(*e.items[i + 1]));
          } else {
            parts[i] = Value::None();
          }
        if (obj.is_undefined()) return UndefinedError(obj);
        BPT_ASSIGN_OR_RETURN(Value r, Slice(obj, parts[0], parts[1], parts[2], *this));
        BPT_RETURN_IF_ERROR(Made(r));
        return r;
      }
      case Expr::Kind::kCall:
        return Call(e, nullptr);
      case Expr::Kind::kFilter: {
        BPT_ASSIGN_OR_RETURN(Value operand, Eval(*e.items[0]));
        return Filter(e, operand);
      }
      case Expr::Kind::kTest: {
        BPT_ASSIGN_OR_RETURN(Value operand, Eval(*e.items[0]));
        BPT_ASSIGN_OR_RETURN(Arguments args, EvalArgs(e.args));
        BPT_ASSIGN_OR_RETURN(bool result, ApplyTest(e.name, operand, args, *this));
        return Value::Bool(result != e.negated);
      }
    }
    return Value();
  }

  StatusOr<bool> Compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return Equal(a, b, *this);
    if (op == "!=") {
      BPT_ASSIGN_OR_RETURN(bool same, Equal(a, b, *this));
      return !same;
    }
    if (op == "in") return Contains(b, a, *this);
    if (op == "not in") {
      BPT_ASSIGN_OR_RETURN(bool in, Contains(b, a, *this));
      return !in;
    }
    if (a.is_undefined()) return UndefinedError(a);
    if (b.is_undefined()) return UndefinedError(b);
    if (op == "<") return Less(a, b, *this);
    if (op == ">") return Less(b, a, *this);
    if (op == "<=") {
      BPT_ASSIGN_OR_RETURN(bool greater, Less(b, a, *this));
      return !greater;
    }
    BPT_ASSIGN_OR_RETURN(bool less, Less(a, b, *this));  // ">="
    return !less;
  }

  StatusOr<Arguments> EvalArgs(const std::vector<Arg>& args) {
    Arguments out;
    for (const auto& a : args) {
      BPT_ASSIGN_OR_RETURN(Value v, Eval(*a.value));
      if (a.name.empty())
        out.positional.push_back(std::move(v));
      else
        out.keyword.emplace_back(a.name, std::move(v));
    }
    return out;
  }

  StatusOr<Value> Filter(const Expr& e, const Value& operand) {
    BPT_ASSIGN_OR_RETURN(Arguments args, EvalArgs(e.args));
    BPT_ASSIGN_OR_RETURN(Value r, ApplyFilter(e.name, operand, args, *this));
    BPT_RETURN_IF_ERROR(Made(r, operand.storage()));
    return r;
  }

  StatusOr<Value> Call(const Expr& e, const Value* caller) {
    BPT_ASSIGN_OR_RETURN(Value callee, Eval(*e.items[0]));
    if (callee.is_undefined()) return UndefinedError(callee);
    if (!callee.is_callable()) return InvalidArgument("'" + callee.TypeName() + "' object is not callable");
    BPT_ASSIGN_OR_RETURN(Arguments args, EvalArgs(e.args));
    if (caller != nullptr) args.keyword.emplace_back("caller", *caller);
    BPT_ASSIGN_OR_RETURN(Value r, callee.function()(args));
    BPT_RETURN_IF_ERROR(Made(r));
    return r;
  }

  const Limits& limits_;
  std::shared_ptr<Frame> current_;
  int depth_ = 0;       // macro calls
  int eval_depth_ = 0;  // Eval and Exec
  int64_t steps_ = 0;
  size_t allocated_ = 0;
};

}  // namespace

StatusOr<Template> Template::Parse(std::string_view source) {
  BPT_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source));
  BPT_ASSIGN_OR_RETURN(Body body, jinja::Parse(tokens));
  BPT_RETURN_IF_ERROR(CheckNames(body));
  return Template(std::make_shared<const Body>(std::move(body)));
}

StatusOr<std::string> Template::Render(const ValueDict& variables, const Limits& limits) const {
  Renderer renderer(limits);
  return renderer.Run(*body_, variables);
}

}  // namespace bpt::jinja
