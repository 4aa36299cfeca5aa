// jinja2's filters, tests and globals, with jinja2's argument names and defaults.
#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "jinja_builtins.h"
#include "jinja_template.h"
#include "jinja_unicode.h"

namespace bpt::jinja {

namespace {

// One C conversion with flags, width and precision, into a buffer sized from snprintf's count.
// The caller bounds width and precision by the output limit (and int).
template <typename T>
StatusOr<std::string> CFormat(const std::string& flags, size_t width, bool has_precision, size_t precision,
                              const std::string& conversion, T x, const Limits& limits) {
  const std::string spec = "%" + flags + "*" + (has_precision ? ".*" : "") + conversion;
  const int w = static_cast<int>(width), p = static_cast<int>(precision);
  auto print = [&](char* buf, size_t size) {
    return has_precision ? std::snprintf(buf, size, spec.c_str(), w, p, x) : std::snprintf(buf, size, spec.c_str(), w, x);
  };
  const int n = print(nullptr, 0);
  if (n < 0) return InvalidArgument("bad format '" + spec + "'");
  if (static_cast<size_t>(n) > limits.max_output_bytes) return InvalidArgument("formatted string too large");
  std::string out(static_cast<size_t>(n) + 1, '\0');
  print(out.data(), out.size());
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

// Python's printf-style formatting (`"%s" % x`, the format filter): %s %r %d %i %o %x %X %e %E
// %f %F %g %G %%, with flags, width and precision; for %s and %r they count code points, as
// Python's do.
StatusOr<std::string> PrintfFormat(const std::string& format, const Value& args, const Limits& limits) {
  ValueList values = args.is_tuple() ? args.list() : ValueList{args};
  const size_t max_field = std::min<size_t>(limits.max_output_bytes, INT_MAX);
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    size_t j = i + 1;
    std::string flags;
    while (j < format.size() && std::string_view("-+ 0#").find(format[j]) != std::string_view::npos) flags += format[j++];
    // A width or precision: digits, false when past the output limit.
    auto number = [&](size_t* value) {
      const size_t begin = j;
      while (j < format.size() && std::isdigit(static_cast<unsigned char>(format[j]))) ++j;
      *value = 0;
      if (j == begin) return true;
      return std::from_chars(format.data() + begin, format.data() + j, *value).ec == std::errc() && *value <= max_field;
    };
    size_t width = 0, precision = 0;
    bool has_precision = false;
    if (!number(&width)) return InvalidArgument("formatted string too large");
    if (j < format.size() && format[j] == '.') {
      ++j;
      has_precision = true;
      if (!number(&precision)) return InvalidArgument("formatted string too large");
    }
    if (j >= format.size()) return InvalidArgument("incomplete format");
    const char conv = format[j];
    i = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) return InvalidArgument("not enough arguments for format string");
    const Value& v = values[next++];
    std::string text;
    if (conv == 's' || conv == 'r') {
      BPT_ASSIGN_OR_RETURN(text, conv == 's' ? ToStr(v, limits.max_output_bytes) : Repr(v, limits.max_output_bytes));
      if (has_precision) {  // the first `precision` code points
        size_t pos = 0, len = 0;
        for (size_t k = 0; k < precision && pos < text.size(); ++k, pos += len) DecodeAt(text, pos, &len);
        text.resize(pos);
      }
      const size_t length = CodePointCount(text);
      if (length < width) {
        if (out.size() + text.size() + (width - length) > limits.max_output_bytes)
          return InvalidArgument("formatted string too large");
        text.insert(flags.find('-') != std::string::npos ? text.size() : 0, width - length, ' ');
      }
    } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
      if (!v.is_number()) return InvalidArgument("%" + std::string(1, conv) + " format: a number is required, not " + v.TypeName());
      long long n = v.as_int();
      if (v.is_float()) {
        const double d = v.as_double();
        if (std::isnan(d)) return InvalidArgument("cannot convert float NaN to integer");
        if (std::isinf(d)) return InvalidArgument("cannot convert float infinity to integer");
        // Python would print the whole integer; past 64 bits the cast would be undefined.
        if (!(std::fabs(d) < 9.2e18)) return InvalidArgument("integer overflow (%" + std::string(1, conv) + " of " + FloatRepr(d) + ")");
        n = static_cast<long long>(d);
      }
      BPT_ASSIGN_OR_RETURN(text, CFormat(flags, width, has_precision, precision, std::string("ll") + (conv == 'i' ? 'd' : conv), n, limits));
    } else if (conv == 'f' || conv == 'F' || conv == 'e' || conv == 'E' || conv == 'g' || conv == 'G') {
      if (!v.is_number()) return InvalidArgument("must be real number, not " + v.TypeName());
      BPT_ASSIGN_OR_RETURN(text, CFormat(flags, width, has_precision, precision, std::string(1, conv), v.as_double(), limits));
    } else {
      return InvalidArgument(std::string("unsupported format character '") + conv + "'");
    }
    if (out.size() + text.size() > limits.max_output_bytes) return InvalidArgument("formatted string too large");
    out += text;
  }
  if (next < values.size()) return InvalidArgument("not all arguments converted during string formatting");
  return out;
}

namespace {

int64_t IntOr(const Value& v, int64_t dflt) { return v.is_number() && !v.is_float() ? v.as_int() : dflt; }

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
StatusOr<Value> AttrPath(const Value& item, const Value& attribute, Budget& budget) {
  if (!attribute.is_string()) return GetItem(item, attribute, budget);
  Value v = item;
  const std::string& path = attribute.str();
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key = Value::String(part);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      key = Value::Int(std::atoll(part.c_str()));
    if (v.is_undefined()) return InvalidArgument(v.str());
    BPT_ASSIGN_OR_RETURN(v, GetItem(v, key, budget));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

StatusOr<std::string> Str(const Value& v, Budget& budget) { return ToStr(v, budget.limits().max_output_bytes); }

// The key sort, unique, min and max compare by: the attribute, lowercased unless case_sensitive.
StatusOr<Value> SortKey(const Value& item, const Value& attribute, bool case_sensitive, Budget& budget) {
  Value key = item;
  if (!attribute.is_undefined() && !attribute.is_none()) {
    BPT_ASSIGN_OR_RETURN(key, AttrPath(item, attribute, budget));
  }
  if (!case_sensitive && key.is_string()) return Value::String(Lower(key.str()));
  return key;
}

StatusOr<ValueList> Sorted(ValueList items, const Value& attribute, bool case_sensitive, bool reverse, Budget& budget) {
  BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(items.size())));
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& item : items) {
    BPT_ASSIGN_OR_RETURN(Value key, SortKey(item, attribute, case_sensitive, budget));
    keyed.emplace_back(std::move(key), std::move(item));
  }
  Status error;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    if (!error.ok()) return false;  // the budget ran out: stop comparing
    auto less = reverse ? Less(y.first, x.first, budget) : Less(x.first, y.first, budget);
    if (!less.ok()) {
      error = less.status();
      return false;
    }
    return *less;
  });
  BPT_RETURN_IF_ERROR(error);
  ValueList out;
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return out;
}

StatusOr<std::string> HtmlEscape(const std::string& s, size_t max_bytes) {
  size_t size = s.size();  // sized first: an entity is up to 5 bytes more than its character
  for (char c : s) size += c == '&' || c == '<' || c == '>' ? (c == '&' ? 4 : 3) : c == '"' || c == '\'' ? 4 : 0;
  if (size > max_bytes) return InvalidArgument("the escaped string would pass " + std::to_string(max_bytes) + " bytes (the limit)");
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Python's int(str): optional sign, digits with single underscores, surrounding whitespace.
bool ParseInt(const std::string& text, int64_t base, int64_t* out) {
  const std::string s = Strip(text, nullptr, true, true);
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && s[i - 1] != '_') continue;
    digits += s[i];
  }
  if (digits.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
  if (errno != 0 || *end != '\0' || std::isspace(static_cast<unsigned char>(digits[0]))) return false;
  *out = v;
  return true;
}

bool ParseFloat(const std::string& text, double* out) {
  const std::string s = Strip(text, nullptr, true, true);
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return *end == '\0';
}

// jinja2's indent: (s + "\n").splitlines() joined by "\n", every line but the first indented
// (blank ones only with `blank`), the first too with `first`. Sized before anything is built.
StatusOr<Value> Indent(const std::string& text, const Value& width, bool first, bool blank, Budget& budget) {
  const size_t max = budget.limits().max_output_bytes;
  const Status too_large =
      InvalidArgument("the indented string would pass " + std::to_string(max) + " bytes (the limit)");
  std::string indention;
  if (width.is_string()) {
    indention = width.str();
  } else {
    const int64_t n = std::max<int64_t>(0, IntOr(width, 4));
    if (static_cast<uint64_t>(n) > max) return too_large;
    indention.assign(static_cast<size_t>(n), ' ');
  }
  const std::string s = text + "\n";
  size_t lines = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' || s[i] == '\r') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      ++lines;
    }
  if (!indention.empty() && (s.size() > max || lines > (max - s.size()) / indention.size())) return too_large;
  BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>((s.size() + lines * indention.size()) / kBytesPerStep)));
  std::string rv;
  size_t start = 0, index = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' || s[i] == '\r') {
      const std::string_view line(s.data() + start, i - start);
      if (index > 0) rv += '\n';
      if (index == 0 ? first : (blank || !line.empty())) rv += indention;
      rv += line;
      ++index;
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = i + 1;
    }
  return Value::String(std::move(rv));
}

StatusOr<Value> ToJsonFilter(const Value& v, const Arguments& args, Budget& budget) {
  BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson"));
  JsonOptions o;
  o.ensure_ascii = a[0].Truthy();
  if (a[1].is_string()) {
    o.has_indent = true;
    o.indent = a[1].str();
  } else if (a[1].is_number() && !a[1].is_float()) {
    o.has_indent = true;
    o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(a[1].as_int(), 0, 256)), ' ');
  }
  if (o.has_indent) o.item_separator = ",";
  if (a[2].is_list()) {
    if (a[2].list().size() != 2 || !a[2].list()[0].is_string() || !a[2].list()[1].is_string())
      return InvalidArgument("tojson separators must be two strings");
    o.item_separator = a[2].list()[0].str();
    o.key_separator = a[2].list()[1].str();
  }
  o.sort_keys = a[3].Truthy();
  BPT_ASSIGN_OR_RETURN(std::string text, ToJson(v, o, budget.limits().max_output_bytes));
  BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(text.size() / kBytesPerStep)));
  return Value::String(std::move(text));
}

// select/reject (attr empty) and selectattr/rejectattr: keep items whose test (truthiness when
// none is named) holds, or fails.
StatusOr<Value> Select(const Value& v, const Arguments& args, bool keep, bool by_attr, Budget& budget) {
  BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
  size_t first = 0;
  Value attribute;
  if (by_attr) {
    if (args.positional.empty()) return InvalidArgument("selectattr/rejectattr need an attribute");
    attribute = args.positional[first++];
  }
  std::string test;
  if (first < args.positional.size()) {
    if (!args.positional[first].is_string()) return InvalidArgument("the test name must be a string");
    test = args.positional[first++].str();
    if (!IsTest(test)) return InvalidArgument("no test named '" + test + "'");
  }
  Arguments test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(first), args.positional.end());
  test_args.keyword = args.keyword;
  ValueList out;
  for (const auto& item : items) {
    Value subject = item;
    if (by_attr) {
      BPT_ASSIGN_OR_RETURN(subject, AttrPath(item, attribute, budget));
    }
    bool holds;
    if (test.empty()) {
      holds = subject.Truthy();
    } else {
      BPT_ASSIGN_OR_RETURN(holds, ApplyTest(test, subject, test_args, budget));
    }
    if (holds == keep) out.push_back(item);
  }
  return Value::List(std::move(out));
}

StatusOr<Value> Map(const Value& v, const Arguments& args, Budget& budget) {
  BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
  ValueList out;
  const Value* attribute = nullptr;
  const Value* dflt = nullptr;
  for (const auto& [k, kv] : args.keyword) {
    if (k == "attribute") attribute = &kv;
    if (k == "default") dflt = &kv;
  }
  if (attribute != nullptr) {
    for (const auto& item : items) {
      BPT_ASSIGN_OR_RETURN(Value x, AttrPath(item, *attribute, budget));
      out.push_back(x.is_undefined() && dflt != nullptr ? *dflt : x);
    }
    return Value::List(std::move(out));
  }
  if (args.positional.empty() || !args.positional[0].is_string()) return InvalidArgument("map needs a filter name or attribute=");
  const std::string filter = args.positional[0].str();
  if (!IsFilter(filter)) return InvalidArgument("no filter named '" + filter + "'");
  Arguments rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const auto& item : items) {
    BPT_ASSIGN_OR_RETURN(Value x, ApplyFilter(filter, item, rest, budget));
    out.push_back(std::move(x));
  }
  return Value::List(std::move(out));
}

StatusOr<Value> MinMax(const Value& v, const Arguments& args, bool max, Budget& budget) {
  BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"case_sensitive", "attribute"}, max ? "max" : "min"));
  BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  BPT_ASSIGN_OR_RETURN(ValueList sorted, Sorted(items, a[1], a[0].Truthy(), max, budget));
  return sorted[0];
}

}  // namespace

static const char* const kFilters[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first",
    "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map",
    "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort",
    "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount"};

static const char* const kTests[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "filter",
    "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower", "lt", "lessthan",
    "<", "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined",
    "upper"};

bool IsFilter(std::string_view name) {
  return std::find(std::begin(kFilters), std::end(kFilters), name) != std::end(kFilters);
}

bool IsTest(std::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

StatusOr<Value> ApplyFilter(std::string_view name, const Value& v, const Arguments& args, Budget& budget) {
  const std::string what(name);
  const Limits& limits = budget.limits();
  if (name == "default" || name == "d") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"default_value", "boolean"}, what));
    const bool use_default = v.is_undefined() || (a[1].Truthy() && !v.Truthy());
    if (!use_default) return v;
    return a[0].is_undefined() ? Value::String("") : a[0];
  }
  if (name == "tojson") return ToJsonFilter(v, args, budget);
  if (name == "safe") return v;
  if (name == "map") return Map(v, args, budget);
  if (name == "select" || name == "reject") return Select(v, args, name == "select", false, budget);
  if (name == "selectattr" || name == "rejectattr") return Select(v, args, name == "selectattr", true, budget);
  if (name == "length" || name == "count") {
    const int64_t n = v.Length();
    if (n < 0) return InvalidArgument("object of type '" + v.TypeName() + "' has no len()");
    return Value::Int(n);
  }
  if (name == "list") {
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
    return Value::List(std::move(items));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::List({});
    if (!v.is_dict()) return InvalidArgument("can only get item pairs from a mapping, not " + v.TypeName());
    BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(v.dict().size())));
    ValueList out;
    for (const auto& [k, item] : v.dict()) out.push_back(Value::List({Value::String(k), item}, true));
    return Value::List(std::move(out));
  }
  if (name == "dictsort") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"case_sensitive", "by", "reverse"}, what));
    if (!v.is_dict()) return InvalidArgument("dictsort needs a mapping, not " + v.TypeName());
    BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(v.dict().size())));
    ValueList pairs;
    for (const auto& [k, item] : v.dict()) pairs.push_back(Value::List({Value::String(k), item}, true));
    const bool by_value = a[1].is_string() && a[1].str() == "value";
    BPT_ASSIGN_OR_RETURN(ValueList sorted, Sorted(pairs, Value::Int(by_value ? 1 : 0), a[0].Truthy(), a[2].Truthy(), budget));
    return Value::List(std::move(sorted));
  }
  if (name == "first" || name == "last") {
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
    if (items.empty()) return Value::Undefined("No " + what + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) return Slice(v, Value::None(), Value::None(), Value::Int(-1), budget);
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "sort") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"reverse", "case_sensitive", "attribute"}, what));
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
    BPT_ASSIGN_OR_RETURN(ValueList sorted, Sorted(std::move(items), a[2], a[1].Truthy(), a[0].Truthy(), budget));
    return Value::List(std::move(sorted));
  }
  if (name == "unique") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"case_sensitive", "attribute"}, what));
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
    BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(items.size())));
    ValueList out, seen;
    for (const auto& item : items) {
      BPT_ASSIGN_OR_RETURN(Value key, SortKey(item, a[1], a[0].Truthy(), budget));
      bool repeated = false;
      for (size_t i = 0; i < seen.size() && !repeated; ++i) {
        BPT_ASSIGN_OR_RETURN(repeated, Equal(seen[i], key, budget));
      }
      if (repeated) continue;
      BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(seen.size())));
      seen.push_back(key);
      out.push_back(item);
    }
    return Value::List(std::move(out));
  }
  if (name == "min" || name == "max") return MinMax(v, args, name == "max", budget);
  if (name == "sum") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"attribute", "start"}, what));
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
    Value total = a[1].is_undefined() ? Value::Int(0) : a[1];
    for (const auto& item : items) {
      Value x = item;
      if (!a[0].is_undefined()) {
        BPT_ASSIGN_OR_RETURN(x, AttrPath(item, a[0], budget));
      }
      BPT_ASSIGN_OR_RETURN(total, Arithmetic("+", total, x, budget));
    }
    return total;
  }
  if (name == "join") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"d", "attribute"}, what));
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
    BPT_ASSIGN_OR_RETURN(std::string sep, a[0].is_undefined() ? StatusOr<std::string>(std::string()) : Str(a[0], budget));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      Value x = items[i];
      if (!a[1].is_undefined()) {
        BPT_ASSIGN_OR_RETURN(x, AttrPath(items[i], a[1], budget));
      }
      BPT_ASSIGN_OR_RETURN(std::string text, Str(x, budget));
      if (i > 0) out += sep;
      out += text;
      if (out.size() > limits.max_output_bytes) return InvalidArgument("joined string too large");
      BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>((sep.size() + text.size()) / kBytesPerStep)));
    }
    return Value::String(std::move(out));
  }
  if (name == "attr") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"name"}, what));
    if (!a[0].is_string()) return InvalidArgument("attr needs a string name");
    return GetAttribute(v, a[0].str(), budget);
  }
  if (name == "batch") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"linecount", "fill_with"}, what));
    const int64_t n = IntOr(a[0], 0);
    if (n <= 0) return InvalidArgument("batch linecount must be positive");
    BPT_ASSIGN_OR_RETURN(ValueList items, Iterate(v, budget));
    ValueList out, row;
    for (auto& item : items) {
      row.push_back(item);
      if (static_cast<int64_t>(row.size()) == n) out.push_back(Value::List(std::exchange(row, {})));
    }
    if (!row.empty()) {
      if (!a[1].is_undefined()) BPT_RETURN_IF_ERROR(budget.Spend(n - static_cast<int64_t>(row.size())));  // before filling
      if (!a[1].is_undefined())
        while (static_cast<int64_t>(row.size()) < n) row.push_back(a[1]);
      out.push_back(Value::List(std::move(row)));
    }
    return Value::List(std::move(out));
  }
  if (name == "abs") {
    if (!v.is_number()) return InvalidArgument("bad operand type for abs(): '" + v.TypeName() + "'");
    if (v.is_float()) return Value::Float(std::fabs(v.as_double()));
    if (v.as_int() == INT64_MIN) return InvalidArgument("integer overflow");
    return Value::Int(std::llabs(v.as_int()));
  }
  if (name == "int") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"default", "base"}, what));
    const Value dflt = a[0].is_undefined() ? Value::Int(0) : a[0];
    if (v.is_float()) {
      if (!std::isfinite(v.as_double()) || std::fabs(v.as_double()) > 9.2e18) return dflt;
      return Value::Int(static_cast<int64_t>(v.as_double()));
    }
    if (v.is_number()) return Value::Int(v.as_int());
    if (!v.is_string()) return dflt;
    int64_t i;
    if (ParseInt(v.str(), IntOr(a[1], 10), &i)) return Value::Int(i);
    double d;
    if (ParseFloat(v.str(), &d) && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::Int(static_cast<int64_t>(d));
    return dflt;
  }
  if (name == "float") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"default"}, what));
    const Value dflt = a[0].is_undefined() ? Value::Float(0) : a[0];
    if (v.is_number()) return Value::Float(v.as_double());
    double d;
    if (v.is_string() && ParseFloat(v.str(), &d)) return Value::Float(d);
    return dflt;
  }
  if (name == "round") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"precision", "method"}, what));
    if (!v.is_number()) return InvalidArgument("round needs a number, not " + v.TypeName());
    const int64_t precision = IntOr(a[0], 0);
    const std::string method = a[1].is_string() ? a[1].str() : "common";
    if (method != "common" && method != "ceil" && method != "floor")
      return InvalidArgument("method must be common, ceil or floor");
    if (!v.is_float() && method == "common") return Value::Int(v.as_int());
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_double() * scale;
    const double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
    return Value::Float(r / scale);
  }
  // The rest take the value as a string.
  BPT_ASSIGN_OR_RETURN(std::string s, Str(v, budget));
  BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(s.size() / kBytesPerStep)));
  if (name == "string") return Value::String(std::move(s));
  if (name == "upper") return Value::String(Upper(s));
  if (name == "lower") return Value::String(Lower(s));
  if (name == "title") return Value::String(Title(s));
  if (name == "capitalize") return Value::String(Capitalize(s));
  if (name == "escape" || name == "e" || name == "forceescape") {
    BPT_ASSIGN_OR_RETURN(std::string escaped, HtmlEscape(s, limits.max_output_bytes));
    return Value::String(std::move(escaped));
  }
  if (name == "trim") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"chars"}, what));
    std::string chars;
    if (a[0].is_string()) chars = a[0].str();
    return Value::String(Strip(s, a[0].is_string() ? &chars : nullptr, true, true));
  }
  if (name == "replace") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"old", "new", "count"}, what));
    BPT_ASSIGN_OR_RETURN(std::string old, Str(a[0], budget));
    BPT_ASSIGN_OR_RETURN(std::string repl, Str(a[1], budget));
    Arguments method_args;
    method_args.positional = {Value::String(old), Value::String(repl)};
    if (a[2].is_number()) method_args.positional.push_back(a[2]);
    BPT_ASSIGN_OR_RETURN(Value method, GetAttribute(Value::String(s), "replace", budget));
    return method.function()(method_args);
  }
  if (name == "indent") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"width", "first", "blank"}, what));
    return Indent(s, a[0], a[1].Truthy(), a[2].Truthy(), budget);
  }
  if (name == "center") {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"width"}, what));
    const int64_t width = std::min<int64_t>(IntOr(a[0], 80), static_cast<int64_t>(limits.max_output_bytes));
    const int64_t len = static_cast<int64_t>(CodePointCount(s));
    if (width <= len) return Value::String(std::move(s));
    const int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
    return Value::String(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(pad - left), ' '));
  }
  if (name == "wordcount") {
    int64_t words = 0;
    bool in_word = false;
    for (unsigned char c : s) {
      const bool word = std::isalnum(c) || c == '_' || c >= 0x80;
      if (word && !in_word) ++words;
      in_word = word;
    }
    return Value::Int(words);
  }
  if (name == "format") {
    Value tuple = Value::List(args.positional, true);
    BPT_ASSIGN_OR_RETURN(std::string out, PrintfFormat(s, tuple, limits));
    return Value::String(std::move(out));
  }
  return InvalidArgument("no filter named '" + what + "'");
}

StatusOr<bool> ApplyTest(std::string_view name, const Value& v, const Arguments& args, Budget& budget) {
  const std::string what(name);
  auto arg = [&]() -> StatusOr<Value> {
    BPT_ASSIGN_OR_RETURN(ValueList a, BindArguments(args, {"other"}, what));
    return a[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "lower") return v.is_string() && Lower(v.str()) == v.str();
  if (name == "upper") return v.is_string() && Upper(v.str()) == v.str();
  if (name == "filter" || name == "test") {
    BPT_ASSIGN_OR_RETURN(Value n, arg());
    return n.is_string() && (name == "filter" ? IsFilter(n.str()) : IsTest(n.str()));
  }
  if (name == "even" || name == "odd" || name == "divisibleby") {
    int64_t divisor = 2;
    if (name == "divisibleby") {
      BPT_ASSIGN_OR_RETURN(Value d, arg());
      if (!d.is_number() || d.is_float()) return InvalidArgument("divisibleby needs an integer");
      divisor = d.as_int();
      if (divisor == 0) return InvalidArgument("integer division or modulo by zero");
    }
    if (!v.is_number()) return InvalidArgument("not all arguments converted during string formatting");
    if (v.is_float()) {
      const double m = std::fmod(v.as_double(), static_cast<double>(divisor));
      return name == "odd" ? m != 0 : m == 0;
    }
    const int64_t m = divisor == -1 ? 0 : v.as_int() % divisor;
    return name == "odd" ? m != 0 : m == 0;
  }
  BPT_ASSIGN_OR_RETURN(Value other, arg());
  if (name == "eq" || name == "equalto" || name == "==") return Equal(v, other, budget);
  if (name == "ne" || name == "!=") {
    BPT_ASSIGN_OR_RETURN(bool same, Equal(v, other, budget));
    return !same;
  }
  if (name == "sameas") {
    if (v.kind() != other.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool()) return v.as_bool() == other.as_bool();
    if (v.is_int()) return v.as_int() == other.as_int() && v.as_int() >= -5 && v.as_int() <= 256;  // CPython's cache
    if (v.is_list()) return &v.list() == &other.list();
    if (v.is_mapping()) return &v.dict() == &other.dict();
    return false;
  }
  if (name == "in") return Contains(other, v, budget);
  if (name == "lt" || name == "lessthan" || name == "<") return Less(v, other, budget);
  if (name == "gt" || name == "greaterthan" || name == ">") return Less(other, v, budget);
  if (name == "le" || name == "<=") {
    BPT_ASSIGN_OR_RETURN(bool greater, Less(other, v, budget));
    return !greater;
  }
  if (name == "ge" || name == ">=") {
    BPT_ASSIGN_OR_RETURN(bool less, Less(v, other, budget));
    return !less;
  }
  return InvalidArgument("no test named '" + what + "'");
}

Status NamespaceInNamespace() {
  return InvalidArgument(
      "a namespace cannot hold a namespace, even inside a list or dict (not supported: values could form a cycle)");
}

ValueDict BuiltinGlobals(Budget& budget) {
  Budget* b = &budget;
  ValueDict globals;
  globals.emplace_back("range", Value::Function("range", [b](Arguments& args) -> StatusOr<Value> {
    if (!args.keyword.empty()) return InvalidArgument("range() takes no keyword arguments");
    if (args.positional.empty() || args.positional.size() > 3)
      return InvalidArgument("range expected 1 to 3 arguments, got " + std::to_string(args.positional.size()));
    int64_t p[3] = {0, 0, 1};
    for (size_t i = 0; i < args.positional.size(); ++i) {
      const Value& a = args.positional[i];
      if (!a.is_number() || a.is_float())
        return InvalidArgument("'" + a.TypeName() + "' object cannot be interpreted as an integer");
      p[args.positional.size() == 1 ? 1 : i] = a.as_int();
    }
    const int64_t start = p[0], stop = p[1], step = p[2];
    if (step == 0) return InvalidArgument("range() arg 3 must not be zero");
    long double count = step > 0 ? std::ceil((static_cast<long double>(stop) - start) / step)
                                 : std::ceil((static_cast<long double>(start) - stop) / -static_cast<long double>(step));
    if (count < 0) count = 0;
    if (count > static_cast<long double>(b->limits().max_range))
      return InvalidArgument("range() of more than " + std::to_string(b->limits().max_range) + " items (the limit)");
    BPT_RETURN_IF_ERROR(b->Spend(static_cast<int64_t>(count)));
    ValueList items;
    for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) items.push_back(Value::Int(start + i * step));
    return Value::List(std::move(items));
  }));
  auto dict_from = [b](const Arguments& args, const std::string& what, bool is_namespace) -> StatusOr<ValueDict> {
    if (args.positional.size() > 1) return InvalidArgument(what + " expected at most 1 positional argument");
    ValueDict items;
    auto put = [&](const std::string& k, const Value& v) -> Status {
      if (is_namespace && !k.empty() && k[0] == '_')
        return InvalidArgument("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                               k + "'. Please rename the attribute.");
      if (is_namespace && (v.is_namespace() || v.holds_namespace())) return NamespaceInNamespace();
      BPT_RETURN_IF_ERROR(b->Spend(static_cast<int64_t>(items.size() / kEntriesPerStep)));  // the scan for k
      for (auto& [key, old] : items)
        if (key == k) {
          old = v;
          return OkStatus();
        }
      items.emplace_back(k, v);
      return OkStatus();
    };
    if (!args.positional.empty()) {
      const Value& init = args.positional[0];
      if (init.is_mapping()) {
        for (const auto& [k, v] : init.dict()) BPT_RETURN_IF_ERROR(put(k, v));
      } else {
        BPT_ASSIGN_OR_RETURN(ValueList pairs, Iterate(init, *b));
        for (const auto& pair : pairs) {
          if (!pair.is_list() || pair.list().size() != 2 || !pair.list()[0].is_string())
            return InvalidArgument(what + ": each item must be a (str, value) pair");
          BPT_RETURN_IF_ERROR(put(pair.list()[0].str(), pair.list()[1]));
        }
      }
    }
    for (const auto& [k, v] : args.keyword) BPT_RETURN_IF_ERROR(put(k, v));
    return items;
  };
  globals.emplace_back("namespace", Value::Function("namespace", [dict_from](Arguments& args) -> StatusOr<Value> {
    BPT_ASSIGN_OR_RETURN(ValueDict items, dict_from(args, "namespace()", true));
    return Value::Namespace(std::move(items));
  }));
  globals.emplace_back("dict", Value::Function("dict", [dict_from](Arguments& args) -> StatusOr<Value> {
    BPT_ASSIGN_OR_RETURN(ValueDict items, dict_from(args, "dict()", false));
    return Value::Dict(std::move(items));
  }));
  return globals;
}

}  // namespace bpt::jinja
