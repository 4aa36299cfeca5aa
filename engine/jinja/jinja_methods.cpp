// Attributes of values: the methods of Python's str, dict and list that templates call (those
// the immutable sandbox allows), then a dict's items.
#include <charconv>
#include <cstdio>

#include "jinja_builtins.h"
#include "jinja_template.h"
#include "jinja_unicode.h"

namespace bpt::jinja {

StatusOr<std::string> PrintfFormat(const std::string& format, const Value& args, const Limits& limits);

namespace {

StatusOr<std::string> StringArg(const Value& v, const std::string& what) {
  if (!v.is_string()) return InvalidArgument(what + " must be str, not " + v.TypeName());
  return v.str();
}

// Python's str.split: by `sep`, or by whitespace runs when sep is None. A step per part, spent
// before the part is made (parts of one byte would take far more memory than the string).
StatusOr<ValueList> Split(const std::string& s, const Value& sep, int64_t maxsplit, Budget& budget) {
  ValueList out;
  if (sep.is_none() || sep.is_undefined()) {
    size_t pos = 0, n;
    auto skip_space = [&] {
      while (pos < s.size() && IsPythonSpace(DecodeAt(s, pos, &n))) pos += n;
    };
    skip_space();
    while (pos < s.size()) {
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(Value::String(Strip(s.substr(pos), nullptr, false, true)));
        return out;
      }
      const size_t start = pos;
      while (pos < s.size() && !IsPythonSpace(DecodeAt(s, pos, &n))) pos += n;
      BPT_RETURN_IF_ERROR(budget.Spend(1));
      out.push_back(Value::String(s.substr(start, pos - start)));
      skip_space();
    }
    return out;
  }
  BPT_ASSIGN_OR_RETURN(std::string d, StringArg(sep, "separator"));
  if (d.empty()) return InvalidArgument("empty separator");
  size_t pos = 0;
  while (true) {
    const size_t hit = (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) ? std::string::npos
                                                                                       : FindBytes(s, d, pos);
    if (hit == std::string::npos) {
      out.push_back(Value::String(s.substr(pos)));
      return out;
    }
    BPT_RETURN_IF_ERROR(budget.Spend(1));
    out.push_back(Value::String(s.substr(pos, hit - pos)));
    pos = hit + d.size();
  }
}

// Python's str.format with automatic and explicit positional fields and named fields, no specs.
StatusOr<std::string> Format(const std::string& f, const Arguments& args, const Limits& limits) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {
      out += c;
      ++i;
      continue;
    }
    if (c == '}') return InvalidArgument("Single '}' encountered in format string");
    if (c != '{') {
      out += c;
      continue;
    }
    const size_t end = f.find('}', i);
    if (end == std::string::npos) return InvalidArgument("Single '{' encountered in format string");
    const std::string field = f.substr(i + 1, end - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos)
      return InvalidArgument("format field '{" + field + "}' is not supported (only {}, {N} and {name})");
    const Value* v = nullptr;
    // As Python: an all-digit name is an index, anything else a keyword ("{1a}" is KeyError).
    const bool numeric = !field.empty() && field.find_first_not_of("0123456789") == std::string::npos;
    if (field.empty() || numeric) {
      size_t index = auto_index;
      if (field.empty()) {
        ++auto_index;
      } else if (std::from_chars(field.data(), field.data() + field.size(), index).ec != std::errc()) {
        return InvalidArgument("Too many decimal digits in format string");
      }
      if (index >= args.positional.size()) return InvalidArgument("Replacement index " + std::to_string(index) + " out of range");
      v = &args.positional[index];
    } else {
      for (const auto& [k, kv] : args.keyword)
        if (k == field) v = &kv;
      if (v == nullptr) return InvalidArgument("KeyError: '" + field + "'");
    }
    BPT_ASSIGN_OR_RETURN(std::string text, ToStr(*v, limits.max_output_bytes));
    out += text;
    if (out.size() > limits.max_output_bytes) return InvalidArgument("formatted string too large");
    i = end;
  }
  return out;
}

StatusOr<Value> Replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count,
                        const Limits& limits) {
  std::string out;
  int64_t done = 0;
  auto full = [&] { return count >= 0 && done >= count; };
  if (old.empty()) {  // Python inserts between every character
    size_t len = 0;
    for (size_t pos = 0; pos < s.size(); pos += len) {
      DecodeAt(s, pos, &len);
      if (!full()) {
        out += repl;
        ++done;
      }
      out.append(s, pos, len);
      if (out.size() > limits.max_output_bytes) return InvalidArgument("replaced string too large");
    }
    if (!full()) out += repl;
    return Value::String(std::move(out));
  }
  size_t pos = 0;
  while (true) {
    const size_t hit = full() ? std::string::npos : FindBytes(s, old, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += repl;
    ++done;
    pos = hit + old.size();
    if (out.size() > limits.max_output_bytes) return InvalidArgument("replaced string too large");
  }
  out.append(s, pos);
  return Value::String(std::move(out));
}

bool AllChars(const std::string& s, bool (*pred)(char32_t)) {
  if (s.empty()) return false;
  for (size_t pos = 0; pos < s.size();) {
    size_t n;
    if (!pred(DecodeAt(s, pos, &n))) return false;
    pos += n;
  }
  return true;
}

StatusOr<Value> StringMethod(const std::string& name, const Value& self, const Arguments& args, Budget& budget) {
  const Limits& limits = budget.limits();
  const std::string& s = self.str();
  const std::string what = "str." + name;
  BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(s.size() / kBytesPerStep)));  // each one reads the string
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"chars"}, what));
    std::string chars;
    const bool custom = a[0].is_string();
    if (custom) chars = a[0].str();
    return Value::String(Strip(s, custom ? &chars : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "startswith" || name == "endswith") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"prefix"}, what));
    ValueList options = a[0].is_tuple() ? a[0].list() : ValueList{a[0]};
    for (const auto& o : options) {
      BPT_ASSIGN_OR_RETURN(std::string p, StringArg(o, what + " argument"));
      const bool hit = p.size() <= s.size() && (name == "startswith" ? s.compare(0, p.size(), p) == 0
                                                                      : s.compare(s.size() - p.size(), p.size(), p) == 0);
      if (hit) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (name == "split") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"sep", "maxsplit"}, what));
    BPT_ASSIGN_OR_RETURN(ValueList parts, Split(s, a[0], a[1].is_number() ? a[1].as_int() : -1, budget));
    return Value::List(std::move(parts));
  }
  if (name == "splitlines") {
    ValueList lines;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n' || s[i] == '\r') {
        BPT_RETURN_IF_ERROR(budget.Spend(1));
        lines.push_back(Value::String(s.substr(start, i - start)));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    if (start < s.size()) lines.push_back(Value::String(s.substr(start)));
    return Value::List(std::move(lines));
  }
  if (name == "replace") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"old", "new", "count"}, what));
    BPT_ASSIGN_OR_RETURN(std::string old, StringArg(a[0], what + " old"));
    BPT_ASSIGN_OR_RETURN(std::string repl, StringArg(a[1], what + " new"));
    return Replace(s, old, repl, a[2].is_number() ? a[2].as_int() : -1, limits);
  }
  if (name == "lower") return Value::String(Lower(s));
  if (name == "upper") return Value::String(Upper(s));
  if (name == "title") return Value::String(Title(s));
  if (name == "capitalize") return Value::String(Capitalize(s));
  if (name == "format") {
    BPT_ASSIGN_OR_RETURN(std::string out, Format(s, args, limits));
    return Value::String(std::move(out));
  }
  if (name == "join") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"iterable"}, what));
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(a[0], budget));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += s;
      BPT_ASSIGN_OR_RETURN(std::string item, StringArg(items[i], "sequence item " + std::to_string(i)));
      out += item;
      if (out.size() > limits.max_output_bytes) return InvalidArgument("joined string too large");
      BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>((s.size() + item.size()) / kBytesPerStep)));
    }
    return Value::String(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"sub"}, what));
    BPT_ASSIGN_OR_RETURN(std::string sub, StringArg(a[0], what + " argument"));
    if (name == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CodePointCount(s)) + 1);
      int64_t n = 0;
      for (size_t pos = FindBytes(s, sub); pos != std::string::npos; pos = FindBytes(s, sub, pos + sub.size())) ++n;
      return Value::Int(n);
    }
    const size_t hit = name == "rfind" ? RFindBytes(s, sub) : FindBytes(s, sub);
    if (hit == std::string::npos) {
      if (name == "index") return InvalidArgument("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(static_cast<int64_t>(CodePointCount(std::string_view(s).substr(0, hit))));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"affix"}, what));
    BPT_ASSIGN_OR_RETURN(std::string p, StringArg(a[0], what + " argument"));
    if (name == "removeprefix" && s.compare(0, p.size(), p) == 0) return Value::String(s.substr(p.size()));
    if (name == "removesuffix" && p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0)
      return Value::String(s.substr(0, s.size() - p.size()));
    return self;
  }
  if (name == "isspace") return Value::Bool(AllChars(s, IsPythonSpace));
  if (name == "isdigit")
    return Value::Bool(AllChars(s, [](char32_t c) { return c >= '0' && c <= '9'; }));
  if (name == "isalpha")
    return Value::Bool(AllChars(s, [](char32_t c) { return ((c | 32) >= 'a' && (c | 32) <= 'z') || c >= 0x80; }));
  if (name == "islower" || name == "isupper") {
    const bool has_cased = Upper(s) != Lower(s);
    return Value::Bool(has_cased && (name == "islower" ? Lower(s) == s : Upper(s) == s));
  }
  return Value::Undefined("'str object' has no attribute '" + name + "'");
}

bool IsStringMethod(const std::string& n) {
  static const char* kNames[] = {"strip", "lstrip", "rstrip", "startswith", "endswith", "split", "splitlines",
                                 "replace", "lower", "upper", "title", "capitalize", "format", "join", "find",
                                 "rfind", "count", "index", "removeprefix", "removesuffix", "isspace", "isdigit",
                                 "isalpha", "islower", "isupper"};
  for (const char* k : kNames)
    if (n == k) return true;
  return false;
}

StatusOr<Value> DictMethod(const std::string& name, const Value& self, const Arguments& args, Budget& budget) {
  const std::string what = "dict." + name;
  if (name == "get") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"key", "default"}, what));
    BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(self.dict().size() / kEntriesPerStep)));
    if (a[0].is_string())
      if (const Value* v = self.Find(a[0].str())) return *v;
    return a[1].is_undefined() ? Value::None() : a[1];
  }
  BPT_RETURN_IF_ERROR(BindArguments(args, {}, what).status());
  BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(self.dict().size())));
  ValueList out;
  for (const auto& [k, v] : self.dict()) {
    if (name == "keys")
      out.push_back(Value::String(k));
    else if (name == "values")
      out.push_back(v);
    else
      out.push_back(Value::List({Value::String(k), v}, /*tuple=*/true));
  }
  if (name == "copy") {
    ValueDict copy = self.dict();
    return Value::Dict(std::move(copy));
  }
  return Value::List(std::move(out));
}

StatusOr<Value> ListMethod(const std::string& name, const Value& self, const Arguments& args, Budget& budget) {
  BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"value"}, "list." + name));
  int64_t count = 0;
  for (size_t i = 0; i < self.list().size(); ++i) {
    BPT_RETURN_IF_ERROR(budget.Spend(1));
    BPT_ASSIGN_OR_RETURN(bool same, Equal(self.list()[i], a[0], budget));
    if (same) {
      if (name == "index") return Value::Int(static_cast<int64_t>(i));
      ++count;
    }
  }
  if (name == "index") return InvalidArgument("value is not in list");
  return Value::Int(count);
}

Value Bind(const std::string& name, const Value& self, Budget& budget,
           StatusOr<Value> (*method)(const std::string&, const Value&, const Arguments&, Budget&)) {
  Budget* b = &budget;
  return Value::Function(self.TypeName() + "." + name, [name, self, b, method](Arguments& args) {
    return method(name, self, args, *b);
  });
}

}  // namespace

StatusOr<Value> GetAttribute(const Value& obj, const std::string& name, Budget& budget) {
  if (obj.is_mapping()) BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(obj.dict().size() / kEntriesPerStep)));
  switch (obj.kind()) {
    case Value::Kind::kString:
      if (IsStringMethod(name)) return Bind(name, obj, budget, StringMethod);
      break;
    case Value::Kind::kDict:
      if (name == "items" || name == "keys" || name == "values" || name == "get" || name == "copy")
        return Bind(name, obj, budget, DictMethod);
      if (name == "update" || name == "pop" || name == "popitem" || name == "setdefault" || name == "clear")
        return InvalidArgument("access to attribute '" + name + "' of 'dict' object is unsafe.");
      if (const Value* v = obj.Find(name)) return *v;
      break;
    case Value::Kind::kNamespace:
      if (const Value* v = obj.Find(name)) return *v;
      break;
    case Value::Kind::kList:
      if (name == "index" || name == "count")
        return Bind(name, obj, budget, ListMethod);
      if (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
          name == "clear" || name == "sort" || name == "reverse")
        return InvalidArgument("access to attribute '" + name + "' of '" + obj.TypeName() + "' object is unsafe.");
      break;
    default:
      break;
  }
  return Value::Undefined("'" + obj.TypeName() + " object' has no attribute '" + name + "'");
}

}  // namespace bpt::jinja
