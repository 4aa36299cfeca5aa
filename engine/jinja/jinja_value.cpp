#include "jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "jinja_unicode.h"

namespace bpt::jinja {

const std::string Value::kEmpty;

namespace {

// The depth and namespace mark a container takes from its elements.
template <typename Items, typename Get>
void Mark(const Items& items, Get get, uint16_t* depth, bool* holds_namespace) {
  int deepest = 0;
  for (const auto& item : items) {
    const Value& v = get(item);
    deepest = std::max(deepest, v.depth());
    if (v.is_namespace() || v.holds_namespace()) *holds_namespace = true;
  }
  *depth = static_cast<uint16_t>(std::min(deepest + 1, int{UINT16_MAX}));
}

}  // namespace

Value Value::Undefined(std::string name) {
  Value v;
  v.s_ = std::make_shared<const std::string>(std::move(name));
  return v;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  if (!s.empty()) v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Value Value::List(ValueList items, bool tuple) {
  Value v;
  v.kind_ = Kind::kList;
  v.tuple_ = tuple;
  Mark(items, [](const Value& x) -> const Value& { return x; }, &v.depth_, &v.holds_namespace_);
  v.list_ = std::make_shared<const ValueList>(std::move(items));
  return v;
}

Value Value::Dict(ValueDict items) {
  Value v;
  v.kind_ = Kind::kDict;
  Mark(items, [](const auto& x) -> const Value& { return x.second; }, &v.depth_, &v.holds_namespace_);
  v.dict_ = std::make_shared<ValueDict>(std::move(items));
  return v;
}

Value Value::Namespace(ValueDict items) {
  Value v = Dict(std::move(items));
  v.kind_ = Kind::kNamespace;
  return v;
}

Value Value::Function(std::string name, NativeFunction fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.s_ = std::make_shared<const std::string>(std::move(name));
  v.fn_ = std::make_shared<const NativeFunction>(std::move(fn));
  return v;
}

Value Value::FromJson(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return None();
    case nlohmann::json::value_t::boolean:
      return Bool(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Int(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      // Beyond int64 Python would keep the integer; a float is the closest this type holds.
      return u <= static_cast<uint64_t>(INT64_MAX) ? Int(static_cast<int64_t>(u)) : Float(static_cast<double>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Float(j.get<double>());
    case nlohmann::json::value_t::string:
      return String(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJson(e));
      return List(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      ValueDict items;
      items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) items.emplace_back(it.key(), FromJson(it.value()));
      return Dict(std::move(items));
    }
    default:
      return None();  // binary and discarded values do not come from parsed JSON
  }
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0;
    case Kind::kString:
      return !str().empty();
    case Kind::kList:
      return !list_->empty();
    case Kind::kDict:
      return !dict_->empty();
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

int64_t Value::Length() const {
  switch (kind_) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(CodePointCount(str()));
    case Kind::kList:
      return static_cast<int64_t>(list_->size());
    case Kind::kDict:
      return static_cast<int64_t>(dict_->size());
    default:
      return -1;
  }
}

const Value* Value::Find(std::string_view key) const {
  if (!is_mapping()) return nullptr;
  for (const auto& [k, v] : *dict_)
    if (k == key) return &v;
  return nullptr;
}

const void* Value::storage() const {
  switch (kind_) {
    case Kind::kString:
      return s_.get();
    case Kind::kList:
      return list_.get();
    case Kind::kDict:
    case Kind::kNamespace:
      return dict_.get();
    default:
      return nullptr;
  }
}

size_t Value::ShallowBytes() const {
  switch (kind_) {
    case Kind::kString:
      return str().size();
    case Kind::kList:
      return list_->size() * sizeof(Value);
    case Kind::kDict:
    case Kind::kNamespace: {
      size_t n = 0;
      for (const auto& [k, v] : *dict_) n += sizeof(std::pair<std::string, Value>) + k.size();
      return n;
    }
    default:
      return 0;
  }
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return tuple_ ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

StatusOr<ValueList> BindArguments(const Arguments& args, std::initializer_list<const char*> names,
                                  const std::string& what) {
  ValueList bound(names.size());
  if (args.positional.size() > names.size())
    return InvalidArgument(what + "() takes at most " + std::to_string(names.size()) + " positional argument(s), got " +
                           std::to_string(args.positional.size()));
  for (size_t i = 0; i < args.positional.size(); ++i) bound[i] = args.positional[i];
  for (const auto& [name, value] : args.keyword) {
    size_t i = 0;
    for (const char* n : names) {
      if (name == n) break;
      ++i;
    }
    if (i == names.size()) return InvalidArgument(what + "() got an unexpected keyword argument '" + name + "'");
    if (i < args.positional.size()) return InvalidArgument(what + "() got multiple values for argument '" + name + "'");
    bound[i] = value;
  }
  return bound;
}

namespace {

Status SpendBytes(Budget& budget, size_t bytes) { return budget.Spend(static_cast<int64_t>(bytes / kBytesPerStep)); }

}  // namespace

StatusOr<bool> Equal(const Value& a, const Value& b, Budget& budget) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      if (a.str().size() != b.str().size()) return false;
      BPT_RETURN_IF_ERROR(SpendBytes(budget, a.str().size()));
      return a.str() == b.str();
    case Value::Kind::kList: {
      if (a.is_tuple() != b.is_tuple() || a.list().size() != b.list().size()) return false;
      if (&a.list() == &b.list()) return true;
      for (size_t i = 0; i < a.list().size(); ++i) {
        BPT_RETURN_IF_ERROR(budget.Spend(1));
        BPT_ASSIGN_OR_RETURN(bool same, Equal(a.list()[i], b.list()[i], budget));
        if (!same) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      if (a.dict().size() != b.dict().size()) return false;
      if (&a.dict() == &b.dict()) return true;
      for (size_t i = 0; i < a.dict().size(); ++i) {
        const auto& [k, v] = a.dict()[i];
        BPT_RETURN_IF_ERROR(budget.Spend(1));
        // Same order (the usual case) finds the key at once; else a scan of b's keys.
        const Value* other = b.dict()[i].first == k ? &b.dict()[i].second : nullptr;
        if (other == nullptr) {
          BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(b.dict().size() / kEntriesPerStep)));
          other = b.Find(k);
        }
        if (other == nullptr) return false;
        BPT_ASSIGN_OR_RETURN(bool same, Equal(v, *other, budget));
        if (!same) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.dict() == &b.dict();
    case Value::Kind::kCallable:
      return &a.function() == &b.function();
    default:
      return false;
  }
}

StatusOr<bool> Less(const Value& a, const Value& b, Budget& budget) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) {  // UTF-8 byte order is code point order
    BPT_RETURN_IF_ERROR(SpendBytes(budget, std::min(a.str().size(), b.str().size())));
    return a.str() < b.str();
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const ValueList& x = a.list();
    const ValueList& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      BPT_RETURN_IF_ERROR(budget.Spend(1));
      BPT_ASSIGN_OR_RETURN(bool same, Equal(x[i], y[i], budget));
      if (same) continue;
      return Less(x[i], y[i], budget);
    }
    return x.size() < y.size();
  }
  return InvalidArgument("'<' not supported between instances of '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, end);  // [-]d[.ddd]e(+|-)XX
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e_pos = sci.find('e');
  int exponent = 0;  // to_chars wrote it: [+-]digits, always in range
  const char* exp_begin = sci.data() + e_pos + 1;
  if (*exp_begin == '+') ++exp_begin;
  std::from_chars(exp_begin, sci.data() + sci.size(), exponent);
  std::string digits = sci.substr(0, e_pos);
  if (digits.size() > 1) digits.erase(1, 1);  // drop the point
  if (exponent < -4 || exponent >= 16) {
    std::string mantissa = digits.substr(0, 1);
    if (digits.size() > 1) mantissa += "." + digits.substr(1);
    char exp_text[16];
    std::snprintf(exp_text, sizeof(exp_text), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return sign + mantissa + exp_text;
  }
  if (exponent < 0) return sign + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  const size_t int_digits = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= int_digits) return sign + digits + std::string(int_digits - digits.size(), '0') + ".0";
  return sign + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

namespace {

Status TooLarge(size_t max_bytes) {
  return InvalidArgument("value too large to print (over " + std::to_string(max_bytes) + " bytes)");
}

void AppendStringRepr(std::string& out, const std::string& s) {
  const char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  out += quote;
  for (size_t pos = 0; pos < s.size();) {
    size_t n;
    const char32_t c = DecodeAt(s, pos, &n);
    char hex[16];
    if (c == '\\' || c == static_cast<char32_t>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) {
      std::snprintf(hex, sizeof(hex), "\\x%02x", static_cast<unsigned>(c));
      out += hex;
    } else if (c == 0x2028 || c == 0x2029 || (c >= 0x200b && c <= 0x200f) || c == 0xfeff) {
      std::snprintf(hex, sizeof(hex), "\\u%04x", static_cast<unsigned>(c));
      out += hex;
    } else {
      out.append(s, pos, n);
    }
    pos += n;
  }
  out += quote;
}

Status AppendRepr(std::string& out, const Value& v, size_t max_bytes);

Status AppendStr(std::string& out, const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      break;
    case Value::Kind::kString:
      out += v.str();
      break;
    default:
      return AppendRepr(out, v, max_bytes);
  }
  return out.size() > max_bytes ? TooLarge(max_bytes) : OkStatus();
}

Status AppendRepr(std::string& out, const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      break;
    case Value::Kind::kNone:
      out += "None";
      break;
    case Value::Kind::kBool:
      out += v.as_bool() ? "True" : "False";
      break;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      break;
    case Value::Kind::kFloat:
      out += FloatRepr(v.as_double());
      break;
    case Value::Kind::kString:
      AppendStringRepr(out, v.str());
      break;
    case Value::Kind::kList: {
      out += v.is_tuple() ? '(' : '[';
      for (size_t i = 0; i < v.list().size(); ++i) {
        if (i > 0) out += ", ";
        BPT_RETURN_IF_ERROR(AppendRepr(out, v.list()[i], max_bytes));
      }
      if (v.is_tuple() && v.list().size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      break;
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      out += v.is_namespace() ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, item] : v.dict()) {
        if (!first) out += ", ";
        first = false;
        AppendStringRepr(out, k);
        out += ": ";
        BPT_RETURN_IF_ERROR(AppendRepr(out, item, max_bytes));
      }
      out += v.is_namespace() ? "}>" : "}";
      break;
    }
    case Value::Kind::kCallable:
      out += "<function " + v.str() + ">";
      break;
  }
  return out.size() > max_bytes ? TooLarge(max_bytes) : OkStatus();
}

void AppendJsonString(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t pos = 0; pos < s.size();) {
    size_t n;
    const char32_t c = DecodeAt(s, pos, &n);
    char hex[16];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          std::snprintf(hex, sizeof(hex), "\\u%04x", static_cast<unsigned>(c));
          out += hex;
        } else if (ensure_ascii && c >= 0x80 && c != static_cast<char32_t>(-1)) {
          if (c >= 0x10000) {
            const unsigned v = static_cast<unsigned>(c) - 0x10000;
            std::snprintf(hex, sizeof(hex), "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
          } else {
            std::snprintf(hex, sizeof(hex), "\\u%04x", static_cast<unsigned>(c));
          }
          out += hex;
        } else {
          out.append(s, pos, n);
        }
    }
    pos += n;
  }
  out += '"';
}

Status AppendJson(std::string& out, const Value& v, const JsonOptions& o, int level, size_t max_bytes) {
  // Sized first: a long indent string times the depth could pass any limit in one line.
  auto newline = [&](int depth) {
    if (!o.has_indent) return OkStatus();
    if (o.indent.size() * static_cast<size_t>(depth) + out.size() + 1 > max_bytes) return TooLarge(max_bytes);
    out += '\n';
    for (int i = 0; i < depth; ++i) out += o.indent;
    return OkStatus();
  };
  switch (v.kind()) {
    case Value::Kind::kNone:
      out += "null";
      break;
    case Value::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      break;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      break;
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d);
      break;
    }
    case Value::Kind::kString:
      AppendJsonString(out, v.str(), o.ensure_ascii);
      break;
    case Value::Kind::kList: {
      if (v.list().empty()) {
        out += "[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < v.list().size(); ++i) {
        if (i > 0) out += o.item_separator;
        BPT_RETURN_IF_ERROR(newline(level + 1));
        BPT_RETURN_IF_ERROR(AppendJson(out, v.list()[i], o, level + 1, max_bytes));
      }
      BPT_RETURN_IF_ERROR(newline(level));
      out += ']';
      break;
    }
    case Value::Kind::kDict: {
      if (v.dict().empty()) {
        out += "{}";
        break;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.dict()) entries.push_back(&e);
      if (o.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](auto* x, auto* y) { return x->first < y->first; });
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out += o.item_separator;
        BPT_RETURN_IF_ERROR(newline(level + 1));
        AppendJsonString(out, entries[i]->first, o.ensure_ascii);
        out += o.key_separator;
        BPT_RETURN_IF_ERROR(AppendJson(out, entries[i]->second, o, level + 1, max_bytes));
      }
      BPT_RETURN_IF_ERROR(newline(level));
      out += '}';
      break;
    }
    default:
      return InvalidArgument("Object of type " + v.TypeName() + " is not JSON serializable");
  }
  return out.size() > max_bytes ? TooLarge(max_bytes) : OkStatus();
}

}  // namespace

StatusOr<std::string> ToStr(const Value& v, size_t max_bytes) {
  std::string out;
  BPT_RETURN_IF_ERROR(AppendStr(out, v, max_bytes));
  return out;
}

StatusOr<std::string> Repr(const Value& v, size_t max_bytes) {
  std::string out;
  BPT_RETURN_IF_ERROR(AppendRepr(out, v, max_bytes));
  return out;
}

StatusOr<std::string> ToJson(const Value& v, const JsonOptions& options, size_t max_bytes) {
  std::string out;
  BPT_RETURN_IF_ERROR(AppendJson(out, v, options, 0, max_bytes));
  return out;
}

}  // namespace bpt::jinja
