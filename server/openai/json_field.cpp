#include "json_field.h"

#include <cmath>

namespace bpt::server::openai {
namespace {

using json = nlohmann::json;

ApiError WrongType(const std::string& param, const char* wanted, const json& value) {
  return InvalidRequest(param, param + " must be " + wanted + ", got " + Describe(value));
}

}  // namespace

std::string Describe(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return value.dump();
    default: return value.type_name();
  }
}

ApiError MustBe(const std::string& param, const std::string& expectation, const json& value) {
  return InvalidRequest(param, param + " must be " + expectation + ", got " + Describe(value));
}

std::optional<ApiError> ReadBool(const json& value, const std::string& param, bool* out) {
  if (!value.is_boolean()) return WrongType(param, "a boolean", value);
  *out = value.get<bool>();
  return std::nullopt;
}

std::optional<ApiError> ReadString(const json& value, const std::string& param, std::string* out) {
  if (!value.is_string()) return WrongType(param, "a string", value);
  *out = value.get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> ReadNumber(const json& value, const std::string& param, double* out) {
  if (!value.is_number()) return WrongType(param, "a number", value);
  *out = value.get<double>();
  return std::nullopt;  // the parser refuses NaN and numbers past a double: every one is finite
}

std::optional<ApiError> ReadInteger(const json& value, const std::string& param, int64_t* out) {
  if (value.is_number_integer() && !value.is_number_unsigned()) {
    *out = value.get<int64_t>();
    return std::nullopt;
  }
  if (value.is_number_unsigned()) {
    if (value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return WrongType(param, "a 64-bit signed integer", value);
    *out = static_cast<int64_t>(value.get<uint64_t>());
    return std::nullopt;
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    // 2^63 itself is past int64; -2^63 is within.
    if (d != std::trunc(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
      return WrongType(param, "an integer", value);
    *out = static_cast<int64_t>(d);
    return std::nullopt;
  }
  return WrongType(param, "an integer", value);
}

std::optional<ApiError> ReadIntegerIn(const json& value, const std::string& param, int64_t min, int64_t max,
                                      int64_t* out) {
  int64_t v = 0;
  if (auto error = ReadInteger(value, param, &v)) return error;
  if (v < min || v > max) return MustBe(param, "in [" + std::to_string(min) + ", " + std::to_string(max) + "]", value);
  *out = v;
  return std::nullopt;
}

}  // namespace bpt::server::openai
