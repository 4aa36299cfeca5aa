// A request body as a JSON object, refused with the API's error when it is not one: malformed
// JSON, invalid UTF-8 (in a string or out of one), NaN or a number past a double, nesting past
// kMaxJsonDepth, or a top level that is no object.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>
#include <variant>

#include "openai_error.h"

namespace bpt::server::openai {

// No OpenAI request nests deeper than 6 (a content part in a message in the list); the bound
// stops a hostile body from costing memory or stack in proportion to its nesting.
inline constexpr size_t kMaxJsonDepth = 64;

std::variant<nlohmann::json, ApiError> ParseJsonBody(std::string_view body);

}  // namespace bpt::server::openai
