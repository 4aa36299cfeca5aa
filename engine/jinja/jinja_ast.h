// The parsed template: expressions and statements as jinja2's parser builds them. Immutable
// once parsed, so one tree serves every render at once.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja_value.h"

namespace bpt::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// A call's, filter's or test's argument: `name` empty for a positional one.
struct Arg {
  std::string name;
  ExprPtr value;
};

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // items; tuple for `(a, b)`
    kDict,      // items as key, value, key, value...
    kUnary,     // op ("-", "+", "not"), items[0]
    kBinary,    // op (arithmetic, "and", "or", "~"), items[0], items[1]
    kCompare,   // items[0] ops[0] items[1] ops[1] items[2]...: Python's chained comparison
    kCond,      // items: condition, then, else (null when absent)
    kGetAttr,   // items[0] . name
    kGetItem,   // items[0] [ items[1] ]
    kSlice,     // items: object, start, stop, step (each null when absent)
    kCall,      // items[0] ( args )
    kFilter,    // items[0] | name ( args ); items empty in a filter block's chain
    kTest,      // items[0] is [not: negated] name ( args )
  };
  Kind kind;
  int line;
  Value value;
  std::string name;
  std::string op;
  std::vector<std::string> ops;
  std::vector<ExprPtr> items;
  std::vector<Arg> args;
  bool tuple = false;
  bool negated = false;
  int height = 1;  // 1 + the tallest operand's: how deep evaluating it recurses
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// What `for` and `set` assign to: names (several: tuple unpacking) or a namespace attribute.
struct Target {
  std::vector<std::string> names;
  std::string attribute;  // non-empty: names[0].attribute
  bool unpack = false;    // `a, b` even with one name (`a,`)
};

// A macro's or call block's parameter.
struct Param {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // expr
    kIf,        // conditions[i] guards bodies[i]; bodies.back() is else when one longer
    kFor,       // target in expr [if condition]: bodies[0], else bodies[1]
    kSet,       // target = expr
    kSetBlock,  // target = bodies[0] rendered, through filters
    kMacro,     // name(params): bodies[0]
    kCallBlock, // expr (a call) with caller(params) = bodies[0]
    kFilterBlock,  // bodies[0] rendered, through filters
    kWith,      // params (name = default_value), bodies[0]
    kBreak,
    kContinue,
    kGeneration,  // transformers' {% generation %}: bodies[0] as it is
  };
  Kind kind;
  int line;
  std::string text;
  std::string name;
  ExprPtr expr;
  ExprPtr condition;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Target target;
  std::vector<Param> params;
  std::vector<ExprPtr> filters;  // kFilter nodes with no operand, applied in order
};

}  // namespace bpt::jinja
