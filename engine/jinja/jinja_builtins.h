// jinja2's built-in filters (`x | name(...)`), tests (`x is name(...)`) and globals (range,
// namespace, dict), plus the filter transformers replaces (tojson, without HTML escaping and with
// json.dumps' options).
#pragma once

#include <string_view>

#include "jinja_value.h"
#include "status.h"

namespace bpt::jinja {

struct Limits;

// Counts per-item work (map, select, sort...) against the render's iteration budget.
class Budget {
 public:
  virtual ~Budget() = default;
  virtual Status Spend(int64_t steps) = 0;
  virtual const Limits& limits() const = 0;
};

bool IsFilter(std::string_view name);
bool IsTest(std::string_view name);
StatusOr<Value> ApplyFilter(std::string_view name, const Value& operand, const Arguments& args, Budget& budget);
StatusOr<bool> ApplyTest(std::string_view name, const Value& operand, const Arguments& args);

// range(), namespace(), dict(): the globals jinja2 (with transformers' restrictions) provides.
ValueDict BuiltinGlobals(Budget& budget);

// Python iteration: a list's items, a dict's keys, a string's characters; Undefined is empty.
StatusOr<ValueList> Iterate(const Value& v);

// Python's getattr/getitem as jinja2's sandbox does them: `obj.name` (methods of str, dict and
// list first, then items) and `obj[key]` (items first). A miss is Undefined naming it.
StatusOr<Value> GetAttribute(const Value& obj, const std::string& name, Budget& budget);
StatusOr<Value> GetItem(const Value& obj, const Value& key, Budget& budget);
StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// The binary operators on values: + - * / // % ** and ~ (Python's semantics, overflow refused).
StatusOr<Value> Arithmetic(std::string_view op, const Value& a, const Value& b, const Limits& limits);
// `in` (substring, element, key).
StatusOr<bool> Contains(const Value& container, const Value& item);

}  // namespace bpt::jinja
