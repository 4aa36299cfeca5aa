#include "json_fields.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "bounded_file.h"

namespace bpt {
namespace {

using nlohmann::json;

// Collects the parser's own message (where and why the text is not JSON) without the
// exception json::parse would throw to deliver it.
class ParseErrorRecorder : public nlohmann::json_sax<json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t byte, const std::string&, const nlohmann::detail::exception& e) override {
    message = e.what();
    position = byte;
    return false;
  }

  std::string message;
  std::size_t position = 0;  // bytes read, the offending one included
};

// The offset of the bracket where the text's arrays and objects first nest deeper than
// max_depth, or npos.
size_t TooDeepAt(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string_view::npos;
}

std::string RenderScalar(const json& value) {
  if (value.is_array()) return "[...]";
  if (value.is_object()) return "{...}";
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A value as messages quote it: short, valid UTF-8 whatever the input held, and one level deep
// (dump() recurses, and a hostile file nests as deep as it likes).
std::string Render(const json& value) {
  std::string text;
  if (value.is_array()) {
    text = "[";
    for (size_t i = 0; i < value.size() && text.size() <= 40; ++i) text += (i ? "," : "") + RenderScalar(value[i]);
    text += "]";
  } else if (value.is_object()) {
    text = "{...}";
  } else {
    text = RenderScalar(value);
  }
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

std::string FormatNumber(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", v);
  return buffer;
}

}  // namespace

StatusOr<json> ParseJsonObject(std::string_view text, const std::string& source) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ParseErrorRecorder recorder;
    json::sax_parse(text.begin(), text.end(), &recorder);
    // Python's json module writes NaN and Infinity; too large a literal overflows to infinity.
    const std::string_view at = text.substr(std::min(text.size(), recorder.position - (recorder.position > 0)));
    if (at.rfind("NaN", 0) == 0 || at.rfind("Infinity", 0) == 0 || recorder.message.find("overflow") != std::string::npos)
      return InvalidArgument(source + ": holds a non-finite number (NaN, Infinity or out of range); values must be finite (" +
                             recorder.message + ")");
    return InvalidArgument(source + ": not valid JSON (" + recorder.message + ")");
  }
  if (!j.is_object()) return InvalidArgument(source + ": top level must be a JSON object, not " + j.type_name());
  return j;
}

Status CheckJsonDepth(std::string_view text, size_t max_depth, const std::string& source) {
  const size_t at = TooDeepAt(text, max_depth);
  if (at == std::string_view::npos) return OkStatus();
  return InvalidArgument(source + ": arrays and objects nest more than " + std::to_string(max_depth) +
                         " deep (at byte " + std::to_string(at) + ")");
}

StatusOr<json> ReadJsonFile(const std::string& path, size_t max_bytes) {
  BPT_ASSIGN_OR_RETURN(const std::string text, ReadBoundedFile(path, max_bytes));
  return ParseJsonObject(text, path);
}

StatusOr<JsonFields> JsonFields::Of(const json& value, std::string where) {
  if (!value.is_object()) return InvalidArgument(where + ": must be a JSON object, got " + Render(value));
  return JsonFields(&value, std::move(where), "");
}

std::string JsonFields::Name(std::string_view key) const { return key_prefix_ + std::string(key); }

std::vector<std::string> JsonFields::Keys() const {
  std::vector<std::string> keys;
  keys.reserve(object_->size());
  for (auto it = object_->begin(); it != object_->end(); ++it) keys.push_back(it.key());
  return keys;
}

const json* JsonFields::Find(std::string_view key) const {
  auto it = object_->find(key);
  return it == object_->end() ? nullptr : &*it;
}

StatusOr<const json*> JsonFields::Required(std::string_view key) const {
  const json* v = Find(key);
  if (v == nullptr) return InvalidArgument(where_ + ": missing required field '" + Name(key) + "'");
  if (v->is_null()) return InvalidArgument(where_ + ": required field '" + Name(key) + "' is null");
  return v;
}

StatusOr<const json*> JsonFields::Optional(std::string_view key, Null null) const {
  const json* v = Find(key);
  if (v == nullptr || (v->is_null() && null == Null::kAbsent)) return static_cast<const json*>(nullptr);
  if (v->is_null()) return InvalidArgument(where_ + ": '" + Name(key) + "' is null; leave it out instead");
  return v;
}

Status JsonFields::TypeError(std::string_view key, const json& value, const char* expected) const {
  return InvalidArgument(where_ + ": '" + Name(key) + "' must be " + expected + ", got " + Render(value));
}

StatusOr<int64_t> JsonFields::ToInt(std::string_view key, const json& value, IntRange range) const {
  const std::string bounds = "[" + std::to_string(range.min) + ", " + std::to_string(range.max) + "]";
  if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(range.max))
    return InvalidArgument(where_ + ": '" + Name(key) + "' must be in " + bounds + ", got " +
                           std::to_string(value.get<uint64_t>()));
  if (!value.is_number_integer()) return TypeError(key, value, "an integer");
  const int64_t v = value.get<int64_t>();
  if (v < range.min || v > range.max)
    return InvalidArgument(where_ + ": '" + Name(key) + "' must be in " + bounds + ", got " + std::to_string(v));
  return v;
}

StatusOr<double> JsonFields::ToNumber(std::string_view key, const json& value, NumberRange range) const {
  if (!value.is_number()) return TypeError(key, value, "a number");
  const double v = value.get<double>();
  if (!std::isfinite(v)) return InvalidArgument(where_ + ": '" + Name(key) + "' is not finite");
  if (v < range.min || v > range.max)
    return InvalidArgument(where_ + ": '" + Name(key) + "' must be in [" + FormatNumber(range.min) + ", " +
                           FormatNumber(range.max) + "], got " + FormatNumber(v));
  return v;
}

StatusOr<int64_t> JsonFields::Int(std::string_view key, IntRange range) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Required(key));
  return ToInt(key, *v, range);
}

StatusOr<double> JsonFields::Number(std::string_view key, NumberRange range) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Required(key));
  return ToNumber(key, *v, range);
}

StatusOr<std::string> JsonFields::String(std::string_view key) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Required(key));
  if (!v->is_string()) return TypeError(key, *v, "a string");
  return v->get<std::string>();
}

StatusOr<JsonFields> JsonFields::Object(std::string_view key) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Required(key));
  if (!v->is_object()) return TypeError(key, *v, "an object");
  return JsonFields(v, where_, Name(key) + ".");
}

StatusOr<std::vector<int64_t>> JsonFields::IntList(std::string_view key, IntRange range) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Required(key));
  if (!v->is_array()) return TypeError(key, *v, "a list of integers");
  std::vector<int64_t> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    BPT_ASSIGN_OR_RETURN(int64_t x, ToInt(std::string(key) + "[" + std::to_string(i) + "]", (*v)[i], range));
    out.push_back(x);
  }
  return out;
}

StatusOr<std::vector<std::string>> JsonFields::StringList(std::string_view key) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Required(key));
  if (!v->is_array()) return TypeError(key, *v, "a list of strings");
  std::vector<std::string> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) return TypeError(std::string(key) + "[" + std::to_string(i) + "]", (*v)[i], "a string");
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

StatusOr<std::map<std::string, std::string>> JsonFields::StringMap(std::string_view key) const {
  const json* v = Find(key);
  if (v == nullptr) return InvalidArgument(where_ + ": missing required field '" + Name(key) + "'");
  if (!v->is_object()) return TypeError(key, *v, "an object of strings");
  std::map<std::string, std::string> out;
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it->is_string()) return TypeError(key, *v, "an object of strings");
    out.emplace(it.key(), it->get<std::string>());
  }
  return out;
}

StatusOr<JsonFields> JsonFields::Member(std::string_view key, std::string where) const {
  const json* v = Find(key);
  if (v == nullptr) return InvalidArgument(where_ + ": missing required field '" + Name(key) + "'");
  return Of(*v, std::move(where));
}

StatusOr<int64_t> JsonFields::IntOr(std::string_view key, int64_t fallback, IntRange range, Null null) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Optional(key, null));
  if (v == nullptr) return fallback;
  return ToInt(key, *v, range);
}

StatusOr<double> JsonFields::NumberOr(std::string_view key, double fallback, NumberRange range, Null null) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Optional(key, null));
  if (v == nullptr) return fallback;
  return ToNumber(key, *v, range);
}

StatusOr<bool> JsonFields::BoolOr(std::string_view key, bool fallback, Null null) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Optional(key, null));
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return TypeError(key, *v, "true or false");
  return v->get<bool>();
}

StatusOr<std::optional<bool>> JsonFields::OptionalBool(std::string_view key, Null null) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Optional(key, null));
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean()) return TypeError(key, *v, "true or false");
  return std::optional<bool>(v->get<bool>());
}

StatusOr<std::optional<std::string>> JsonFields::OptionalString(std::string_view key, Null null) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Optional(key, null));
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return TypeError(key, *v, "a string");
  return std::optional<std::string>(v->get<std::string>());
}

StatusOr<std::optional<JsonFields>> JsonFields::OptionalObject(std::string_view key, Null null) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Optional(key, null));
  if (v == nullptr) return std::optional<JsonFields>();
  if (!v->is_object()) return TypeError(key, *v, "an object");
  return std::optional<JsonFields>(JsonFields(v, where_, Name(key) + "."));
}

StatusOr<std::vector<int64_t>> JsonFields::IntOrIntList(std::string_view key, IntRange range, Null null) const {
  BPT_ASSIGN_OR_RETURN(const json* v, Optional(key, null));
  if (v == nullptr) return std::vector<int64_t>();
  if (!v->is_array()) {
    if (!v->is_number_integer()) return TypeError(key, *v, "an integer or a list of integers");
    BPT_ASSIGN_OR_RETURN(int64_t x, ToInt(key, *v, range));
    return std::vector<int64_t>{x};
  }
  return IntList(key, range);
}

}  // namespace bpt
