// jinja2's built-in filters (`x | name(...)`), tests (`x is name(...)`) and globals (range,
// namespace, dict), plus the filter transformers replaces (tojson, without HTML escaping and with
// json.dumps' options).
#pragma once

#include <string_view>

#include "jinja_value.h"
#include "status.h"

namespace bpt::jinja {

bool IsFilter(std::string_view name);
bool IsTest(std::string_view name);
StatusOr<Value> ApplyFilter(std::string_view name, const Value& operand, const Arguments& args, Budget& budget);
StatusOr<bool> ApplyTest(std::string_view name, const Value& operand, const Arguments& args, Budget& budget);

// The refusal of a namespace stored in a namespace (directly or in a container): without it a
// namespace could hold itself, a cycle that printing would follow forever and that would leak.
Status NamespaceInNamespace();

// range(), namespace(), dict(): the globals jinja2 (with transformers' restrictions) provides.
ValueDict BuiltinGlobals(Budget& budget);

// Python iteration: a list's items, a dict's keys, a string's characters; Undefined is empty.
// Spends a step per item, before making them.
StatusOr<ValueList> Iterate(const Value& v, Budget& budget);

// Python's getattr/getitem as jinja2's sandbox does them: `obj.name` (methods of str, dict and
// list first, then items) and `obj[key]` (items first). A miss is Undefined naming it.
StatusOr<Value> GetAttribute(const Value& obj, const std::string& name, Budget& budget);
StatusOr<Value> GetItem(const Value& obj, const Value& key, Budget& budget);
StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop, const Value& step, Budget& budget);

// The binary operators on values: + - * / // % ** and ~ (Python's semantics, overflow refused).
StatusOr<Value> Arithmetic(std::string_view op, const Value& a, const Value& b, Budget& budget);
// `in` (substring, element, key).
StatusOr<bool> Contains(const Value& container, const Value& item, Budget& budget);

}  // namespace bpt::jinja
