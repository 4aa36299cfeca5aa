// One field's JSON value read as the type the API gives it, or the 400 that names the field and
// says what it should have been ("temperature must be a number, got a string"). The value is
// never null here: null means unset, which the caller handles before reading.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "openai_error.h"

namespace bpt::server::openai {

// "a string", "an array", "1.5", "true": how messages describe what the client sent.
std::string Describe(const nlohmann::json& value);

// `param` must be `expectation` ("in [0, 2]", "1"), and got `value`.
ApiError MustBe(const std::string& param, const std::string& expectation, const nlohmann::json& value);

std::optional<ApiError> ReadBool(const nlohmann::json& value, const std::string& param, bool* out);
std::optional<ApiError> ReadString(const nlohmann::json& value, const std::string& param, std::string* out);
// Any finite JSON number.
std::optional<ApiError> ReadNumber(const nlohmann::json& value, const std::string& param, double* out);
// An integer within int64, also written as a float with no fraction (5.0), as Python's clients
// may send and OpenAI's own validation accepts.
std::optional<ApiError> ReadInteger(const nlohmann::json& value, const std::string& param, int64_t* out);
// An integer in [min, max].
std::optional<ApiError> ReadIntegerIn(const nlohmann::json& value, const std::string& param, int64_t min, int64_t max,
                                      int64_t* out);

}  // namespace bpt::server::openai
