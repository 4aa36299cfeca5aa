// A template value with Python's semantics, as jinja2 sees the data transformers passes it:
// None, bool, int, float, str, list (and tuple), dict (insertion-ordered), jinja2's default
// Undefined, namespace() objects and callables. Lists, dicts and strings are shared and
// immutable (transformers renders in jinja2's ImmutableSandboxedEnvironment); a namespace is the
// one mutable object, shared by every copy of it.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "status.h"

namespace bpt::jinja {

class Value;
using ValueList = std::vector<Value>;
using ValueDict = std::vector<std::pair<std::string, Value>>;  // insertion order, unique keys

// A call's arguments as jinja2 passes them: positional, then keyword.
struct Arguments {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using NativeFunction = std::function<StatusOr<Value>(Arguments&)>;

struct Limits;

// The render's budgets: work (loop iterations, macro calls and elements or bytes an operation
// touches) and bytes of strings and containers produced; each refusal names its limit.
class Budget {
 public:
  virtual ~Budget() = default;
  virtual Status Spend(int64_t steps) = 0;
  virtual Status Allocate(size_t bytes) = 0;
  virtual const Limits& limits() const = 0;
};

// Work on bytes (scanning, comparing, copying) spends one step per this many; on elements, one
// per element, except key lookups in a dict, one per this many entries scanned.
inline constexpr size_t kBytesPerStep = 256;
inline constexpr size_t kEntriesPerStep = 8;

// Containers nest at most this deep (the nesting the template's evaluation checks): printing,
// comparing and destroying a value recurse once per level.
inline constexpr int kMaxValueDepth = 1000;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() = default;  // Undefined
  static Value Undefined(std::string name);  // name: what the error of a later use names
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(ValueList items, bool tuple = false);
  static Value Dict(ValueDict items);
  static Value Namespace(ValueDict items);
  static Value Function(std::string name, NativeFunction fn);
  static Value FromJson(const nlohmann::json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }  // bool excluded, unlike Python
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }  // bool or int
  double as_double() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(as_int()); }
  const std::string& str() const { return s_ ? *s_ : kEmpty; }  // string; for Undefined and a callable, its name
  const ValueList& list() const { return *list_; }
  const ValueDict& dict() const { return *dict_; }  // dict or namespace
  ValueDict& mutable_namespace() const { return *dict_; }
  const NativeFunction& function() const { return *fn_; }
  // Containers: one more than the deepest element (saturating); scalars 0. A namespace's counts
  // its items when it was made (its later attributes hold no namespace, see holds_namespace).
  int depth() const { return depth_; }
  // A container with a namespace anywhere inside (a namespace may hold none, so values never
  // form a cycle).
  bool holds_namespace() const { return holds_namespace_; }
  // The shared storage (string, list or dict), to tell a fresh value from one passed through.
  const void* storage() const;
  // Bytes a fresh copy of this value's own storage takes (not its elements' storage).
  size_t ShallowBytes() const;

  // Python truthiness (Undefined is false).
  bool Truthy() const;
  // Python's len(); -1 where it has none.
  int64_t Length() const;
  // A dict's (or namespace's) entry, or nullptr.
  const Value* Find(std::string_view key) const;
  // Python's type name as its error messages say it ('str', 'dict', 'NoneType').
  std::string TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool tuple_ = false;
  bool holds_namespace_ = false;
  uint16_t depth_ = 0;
  int64_t i_ = 0;
  double f_ = 0;
  static const std::string kEmpty;
  std::shared_ptr<const std::string> s_;  // null: empty
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<const NativeFunction> fn_;
};

// Binds a call's arguments to parameter names in order (positional first, then by keyword), as
// Python does; a parameter not given is Undefined. `what` names the callee in errors.
StatusOr<ValueList> BindArguments(const Arguments& args, std::initializer_list<const char*> names,
                                  const std::string& what);

// Python ==, with 1 == 1.0 == True; Undefined equals only Undefined. Identical containers are
// equal at once (CPython's identity shortcut); every element compared spends a step.
StatusOr<bool> Equal(const Value& a, const Value& b, Budget& budget);
// Python <; a TypeError (as Python's message says it) for unordered types.
StatusOr<bool> Less(const Value& a, const Value& b, Budget& budget);

// Python str() and repr(), failing once the result would pass max_bytes.
StatusOr<std::string> ToStr(const Value& v, size_t max_bytes);
StatusOr<std::string> Repr(const Value& v, size_t max_bytes);
// Python's repr() of a float: the shortest text that reads back the same ("1.0", "1e-05").
std::string FloatRepr(double d);

// Python's json.dumps with its keyword arguments, as transformers' tojson filter calls it.
struct JsonOptions {
  bool ensure_ascii = false;
  std::string indent;  // used when has_indent
  bool has_indent = false;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
StatusOr<std::string> ToJson(const Value& v, const JsonOptions& options, size_t max_bytes);

}  // namespace bpt::jinja
