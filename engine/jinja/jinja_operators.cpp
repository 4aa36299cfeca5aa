// The operators of jinja2 expressions over values, with Python's semantics and messages.
#include <cmath>
#include <cstdio>
#include <optional>

#include "jinja_builtins.h"
#include "jinja_template.h"
#include "jinja_unicode.h"

namespace bpt::jinja {
namespace {

Status TooLarge(const Limits& limits) {
  return InvalidArgument("a value would pass " + std::to_string(limits.max_output_bytes) + " bytes (the limit)");
}

Status SpendBytes(Budget& budget, size_t bytes) { return budget.Spend(static_cast<int64_t>(bytes / kBytesPerStep)); }

StatusOr<Value> Repeat(const Value& seq, int64_t n, Budget& budget) {
  const Limits& limits = budget.limits();
  if (n <= 0) return seq.is_string() ? Value::String("") : Value::List({}, seq.is_tuple());
  const size_t unit = seq.is_string() ? seq.str().size() : seq.list().size() * sizeof(Value);
  if (unit > 0 && static_cast<uint64_t>(n) > limits.max_output_bytes / unit) return TooLarge(limits);
  if (seq.is_string()) {
    BPT_RETURN_IF_ERROR(SpendBytes(budget, unit * static_cast<size_t>(n)));
    std::string out;
    out.reserve(unit * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value::String(std::move(out));
  }
  BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(seq.list().size()) * n));
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
  return Value::List(std::move(out), seq.is_tuple());
}

Status Unsupported(std::string_view op, const Value& a, const Value& b) {
  return InvalidArgument("unsupported operand type(s) for " + std::string(op) + ": '" + a.TypeName() + "' and '" +
                         b.TypeName() + "'");
}

// Python's floor division and modulo, which round toward negative infinity.
int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace

StatusOr<ValueList> Iterate(const Value& v, Budget& budget) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return ValueList{};
    case Value::Kind::kList:
      BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(v.list().size())));
      return v.list();
    case Value::Kind::kDict: {
      BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(v.dict().size())));
      ValueList keys;
      for (const auto& [k, item] : v.dict()) keys.push_back(Value::String(k));
      return keys;
    }
    case Value::Kind::kString: {
      BPT_RETURN_IF_ERROR(SpendBytes(budget, v.str().size()));
      BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(CodePointCount(v.str()))));
      ValueList chars;
      const std::vector<size_t> offsets = CodePointOffsets(v.str());
      for (size_t i = 0; i + 1 < offsets.size(); ++i)
        chars.push_back(Value::String(v.str().substr(offsets[i], offsets[i + 1] - offsets[i])));
      return chars;
    }
    default:
      return InvalidArgument("'" + v.TypeName() + "' object is not iterable");
  }
}

StatusOr<std::string> PrintfFormat(const std::string& format, const Value& args, const Limits& limits);

StatusOr<Value> Arithmetic(std::string_view op, const Value& a, const Value& b, Budget& budget) {
  const Limits& limits = budget.limits();
  if (op == "~") {
    BPT_ASSIGN_OR_RETURN(std::string x, ToStr(a, limits.max_output_bytes));
    BPT_ASSIGN_OR_RETURN(std::string y, ToStr(b, limits.max_output_bytes));
    if (x.size() + y.size() > limits.max_output_bytes) return TooLarge(limits);
    BPT_RETURN_IF_ERROR(SpendBytes(budget, x.size() + y.size()));
    return Value::String(x + y);
  }
  if (a.is_undefined()) return InvalidArgument(a.str());
  if (b.is_undefined()) return InvalidArgument(b.str());
  const bool numbers = a.is_number() && b.is_number();
  const bool floats = numbers && (a.is_float() || b.is_float());
  if (op == "+") {
    if (floats) return Value::Float(a.as_double() + b.as_double());
    if (numbers) {
      int64_t r;
      if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) return InvalidArgument("integer overflow");
      return Value::Int(r);
    }
    if (a.is_string() && b.is_string()) {
      if (a.str().size() + b.str().size() > limits.max_output_bytes) return TooLarge(limits);
      BPT_RETURN_IF_ERROR(SpendBytes(budget, a.str().size() + b.str().size()));
      return Value::String(a.str() + b.str());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      if ((a.list().size() + b.list().size()) * sizeof(Value) > limits.max_output_bytes) return TooLarge(limits);
      BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(a.list().size() + b.list().size())));
      ValueList out = a.list();
      out.insert(out.end(), b.list().begin(), b.list().end());
      return Value::List(std::move(out), a.is_tuple());
    }
    if (a.is_string() || a.is_list())
      return InvalidArgument("can only concatenate " + a.TypeName() + " (not \"" + b.TypeName() + "\") to " +
                             a.TypeName());
    return Unsupported(op, a, b);
  }
  if (op == "-") {
    if (floats) return Value::Float(a.as_double() - b.as_double());
    if (numbers) {
      int64_t r;
      if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) return InvalidArgument("integer overflow");
      return Value::Int(r);
    }
    return Unsupported(op, a, b);
  }
  if (op == "*") {
    if (floats) return Value::Float(a.as_double() * b.as_double());
    if (numbers) {
      int64_t r;
      if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) return InvalidArgument("integer overflow");
      return Value::Int(r);
    }
    if ((a.is_string() || a.is_list()) && b.is_number() && !b.is_float()) return Repeat(a, b.as_int(), budget);
    if ((b.is_string() || b.is_list()) && a.is_number() && !a.is_float()) return Repeat(b, a.as_int(), budget);
    return InvalidArgument("can't multiply sequence by non-int of type '" + b.TypeName() + "'");
  }
  if (op == "%" && a.is_string()) {
    BPT_ASSIGN_OR_RETURN(std::string s, PrintfFormat(a.str(), b, limits));
    BPT_RETURN_IF_ERROR(SpendBytes(budget, s.size()));
    return Value::String(std::move(s));
  }
  if (!numbers) return Unsupported(op, a, b);
  if (op == "/") {
    if (b.as_double() == 0) return InvalidArgument("division by zero");
    return Value::Float(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (b.as_double() == 0) return InvalidArgument(op == "//" ? "integer division or modulo by zero" : "modulo by zero");
    if (floats) {
      const double x = a.as_double(), y = b.as_double();
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return op == "%" ? Value::Float(m) : Value::Float(std::floor((x - m) / y + 0.5));
    }
    const int64_t x = a.as_int(), y = b.as_int();
    if (x == INT64_MIN && y == -1) return op == "%" ? Value::Int(0) : StatusOr<Value>(InvalidArgument("integer overflow"));
    const int64_t q = FloorDiv(x, y);
    return op == "//" ? Value::Int(q) : Value::Int(x - q * y);
  }
  if (op == "**") {
    if (floats || b.as_int() < 0) {
      const double r = std::pow(a.as_double(), b.as_double());
      if (std::isnan(r) && !std::isnan(a.as_double()) && !std::isnan(b.as_double()))
        return InvalidArgument("a negative number cannot be raised to a fractional power here");
      return Value::Float(r);
    }
    int64_t base = a.as_int(), exp = b.as_int(), r = 1;
    while (exp > 0) {
      if ((exp & 1) && __builtin_mul_overflow(r, base, &r)) return InvalidArgument("integer overflow");
      exp >>= 1;
      if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return InvalidArgument("integer overflow");
    }
    return Value::Int(r);
  }
  return InvalidArgument("unknown operator '" + std::string(op) + "'");
}

StatusOr<bool> Contains(const Value& container, const Value& item, Budget& budget) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string())
        return InvalidArgument("'in <string>' requires string as left operand, not " + item.TypeName());
      BPT_RETURN_IF_ERROR(SpendBytes(budget, container.str().size()));
      return FindBytes(container.str(), item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& v : container.list()) {
        BPT_RETURN_IF_ERROR(budget.Spend(1));
        BPT_ASSIGN_OR_RETURN(bool same, Equal(v, item, budget));
        if (same) return true;
      }
      return false;
    case Value::Kind::kDict:
      BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(container.dict().size() / kEntriesPerStep)));
      return item.is_string() && container.Find(item.str()) != nullptr;
    default:
      return InvalidArgument("argument of type '" + container.TypeName() + "' is not iterable");
  }
}

StatusOr<Value> GetItem(const Value& obj, const Value& key, Budget& budget) {
  if ((obj.is_list() || obj.is_string()) && key.is_number() && !key.is_float()) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::Undefined("'list object' has no element " + std::to_string(key.as_int()));
      return obj.list()[static_cast<size_t>(i)];
    }
    const std::string& s = obj.str();
    BPT_RETURN_IF_ERROR(SpendBytes(budget, s.size()));
    if (i < 0) i += static_cast<int64_t>(CodePointCount(s));
    size_t pos = 0, len = 0;
    for (int64_t k = 0; i >= 0 && pos < s.size(); ++k, pos += len) {
      DecodeAt(s, pos, &len);
      if (k == i) return Value::String(s.substr(pos, len));
    }
    return Value::Undefined("'str object' has no element " + std::to_string(key.as_int()));
  }
  if (obj.is_dict() && key.is_string()) {
    BPT_RETURN_IF_ERROR(budget.Spend(static_cast<int64_t>(obj.dict().size() / kEntriesPerStep)));
    if (const Value* v = obj.Find(key.str())) return *v;
  }
  if (key.is_string()) {
    if (obj.is_dict()) {
      // jinja2 falls back to the attribute: d['items'] without that key is the method
      BPT_ASSIGN_OR_RETURN(Value method, GetAttribute(obj, key.str(), budget));
      if (!method.is_undefined()) return method;
      return Value::Undefined("'dict object' has no attribute '" + key.str() + "'");
    }
    return GetAttribute(obj, key.str(), budget);
  }
  auto key_text = Repr(key, 256);
  return Value::Undefined("'" + obj.TypeName() + " object' has no element " + (key_text.ok() ? *key_text : "?"));
}

StatusOr<Value> Slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v,
                      Budget& budget) {
  auto as_index = [](const Value& v, const char* what) -> StatusOr<std::optional<int64_t>> {
    if (v.is_none()) return std::optional<int64_t>();
    if (!v.is_number() || v.is_float())
      return InvalidArgument(std::string("slice ") + what + " must be an integer or None, not " + v.TypeName());
    return std::optional<int64_t>(v.as_int());
  };
  BPT_ASSIGN_OR_RETURN(auto start_o, as_index(start_v, "start"));
  BPT_ASSIGN_OR_RETURN(auto stop_o, as_index(stop_v, "stop"));
  BPT_ASSIGN_OR_RETURN(auto step_o, as_index(step_v, "step"));
  // PySlice_Unpack: the most negative step is taken as -INT64_MAX, so -step cannot overflow.
  const int64_t step = std::max(step_o.value_or(1), -INT64_MAX);
  if (step == 0) return InvalidArgument("slice step cannot be zero");
  if (!obj.is_list() && !obj.is_string()) return InvalidArgument("'" + obj.TypeName() + "' object is not subscriptable");
  if (obj.is_string()) BPT_RETURN_IF_ERROR(SpendBytes(budget, obj.str().size()));
  const int64_t n = obj.is_string() ? static_cast<int64_t>(CodePointCount(obj.str()))
                                    : static_cast<int64_t>(obj.list().size());
  // Python's PySlice_AdjustIndices: start and stop end up in [-1, n], so their differences fit.
  auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t i = *v;
    if (i < 0) {
      i = i < -n ? (step < 0 ? -1 : 0) : i + n;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t start = adjust(start_o, step < 0 ? n - 1 : 0);
  const int64_t stop = adjust(stop_o, step < 0 ? -1 : n);
  int64_t count = 0;
  if (step < 0 ? stop < start : start < stop)
    count = step < 0 ? (start - stop - 1) / -step + 1 : (stop - start - 1) / step + 1;
  BPT_RETURN_IF_ERROR(budget.Spend(count));
  // The k-th item is start + k * step; k * step stays between start and stop, so it fits.
  if (obj.is_list()) {
    ValueList items;
    items.reserve(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) items.push_back(obj.list()[static_cast<size_t>(start + k * step)]);
    return Value::List(std::move(items), obj.is_tuple());
  }
  // A string: one pass over its code points, taking those the slice names (from the lowest one
  // up, reversed after for a negative step), without an offset table as large as the string.
  const std::string& s = obj.str();
  const int64_t low = step > 0 ? start : start + (count - 1) * step;
  const int64_t stride = step > 0 ? step : -step;
  std::vector<std::pair<size_t, size_t>> taken;  // byte offset, length
  std::string out;
  size_t pos = 0, len = 0;
  for (int64_t k = 0; count > 0 && pos < s.size() && k < low + (count - 1) * stride + 1; ++k, pos += len) {
    DecodeAt(s, pos, &len);
    if (k >= low && (k - low) % stride == 0) {
      if (step > 0)
        out.append(s, pos, len);
      else
        taken.emplace_back(pos, len);
    }
  }
  for (auto it = taken.rbegin(); it != taken.rend(); ++it) out.append(s, it->first, it->second);
  return Value::String(std::move(out));
}

}  // namespace bpt::jinja
