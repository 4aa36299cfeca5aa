#include "openai_error.h"

#include <nlohmann/json.hpp>
#include <utility>

namespace bpt::server::openai {
namespace {

struct StatusShape {
  int http_status;
  const char* type;
  const char* code;  // "" -> null
};

StatusShape ShapeOf(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kFailedPrecondition: return {400, "invalid_request_error", ""};
    case StatusCode::kUnauthenticated: return {401, "invalid_request_error", "invalid_api_key"};  // as OpenAI
    case StatusCode::kNotFound: return {404, "not_found_error", ""};
    case StatusCode::kResourceExhausted:
      // The scheduler's "prompt + max_new_tokens exceeds the KV cache capacity" holds however
      // long the client waits: retrying (what 429 asks for) would never succeed.
      if (status.message().find("exceeds the KV cache capacity") != std::string::npos)
        return {400, "invalid_request_error", ""};
      return {429, "rate_limit_error", "rate_limit_exceeded"};
    case StatusCode::kUnavailable: return {503, "server_error", ""};
    case StatusCode::kDeadlineExceeded: return {504, "server_error", ""};
    // nginx's "client closed request": nobody reads it, but logs and metrics count it apart.
    case StatusCode::kCancelled: return {499, "invalid_request_error", ""};
    default: return {500, "server_error", ""};
  }
}

bool IsFieldChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

// The engine's and the worker's messages begin with the field they refuse: "temperature must
// be ...", "stop[2] is empty", "chat.messages: ...", "prompt has 9000 tokens; ...".
std::string ParamOf(const std::string& message, std::string_view prompt_param) {
  struct Named {
    std::string_view leading;  // as the engine or the worker writes it
    std::string_view param;    // "" -> prompt_param
  };
  static constexpr Named kNames[] = {
      {"the rendered chat", "messages"},
      {"chat.messages", "messages"},
      {"the prompt", ""},
      {"prompt", ""},
      {"max_new_tokens", "max_tokens"},
      {"stop_token_ids", "stop_token_ids"},
      {"stop", "stop"},
      {"temperature", "temperature"},
      {"top_k", "top_k"},
      {"top_p", "top_p"},
      {"min_p", "min_p"},
      {"repetition_penalty", "repetition_penalty"},
      {"presence_penalty", "presence_penalty"},
      {"frequency_penalty", "frequency_penalty"},
      {"top_logprobs", "top_logprobs"},
      {"seed", "seed"},
  };
  for (const Named& n : kNames) {
    if (message.compare(0, n.leading.size(), n.leading) != 0) continue;
    if (message.size() > n.leading.size() && IsFieldChar(message[n.leading.size()])) continue;
    std::string param(n.param.empty() ? prompt_param : n.param);
    // An element's index stays: "stop[2] is empty" names stop[2].
    if (message.size() > n.leading.size() && message[n.leading.size()] == '[') {
      const size_t close = message.find(']', n.leading.size());
      if (close != std::string::npos) param += message.substr(n.leading.size(), close + 1 - n.leading.size());
    }
    return param;
  }
  return "";
}

bool SaysContextExceeded(const std::string& message) {
  return message.find("context limit") != std::string::npos ||
         message.find("exceeds the KV cache capacity") != std::string::npos ||
         message.find("(--max-prompt-tokens)") != std::string::npos;
}

}  // namespace

ApiError InvalidRequest(std::string param, std::string message) {
  ApiError error;
  error.message = std::move(message);
  error.param = std::move(param);
  return error;
}

std::string ErrorBody(const ApiError& error) {
  const auto null_if_empty = [](const std::string& s) { return s.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(s); };
  nlohmann::ordered_json body = {{"error",
                                  {{"message", error.message},
                                   {"type", error.type},
                                   {"param", null_if_empty(error.param)},
                                   {"code", null_if_empty(error.code)}}}};
  // Messages quote what the client sent, which may hold invalid UTF-8.
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

ApiError FromStatus(const Status& status, std::string_view prompt_param) {
  const StatusShape shape = ShapeOf(status);
  ApiError error;
  error.http_status = shape.http_status;
  error.type = shape.type;
  error.code = shape.code;
  error.message = status.message().empty() ? StatusCodeName(status.code()) : status.message();
  if (shape.http_status == 400) {
    error.param = ParamOf(status.message(), prompt_param);
    if (SaysContextExceeded(status.message())) error.code = "context_length_exceeded";
  }
  return error;
}

}  // namespace bpt::server::openai
