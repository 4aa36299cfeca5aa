// The OpenAI API's error object and the HTTP status that carries it: what every refusal of the
// HTTP API, the protocol's own and the engine's, becomes on the wire.
#pragma once

#include <string>
#include <string_view>

#include "status.h"

namespace bpt::server::openai {

struct ApiError {
  int http_status = 400;
  std::string message;
  // OpenAI's: invalid_request_error (4xx), authentication_error (401), not_found_error (404),
  // rate_limit_error (429), server_error (5xx).
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault; "" -> JSON null
  std::string code;   // "" -> JSON null; e.g. "invalid_api_key", "model_not_found", "context_length_exceeded"
};

// A 400 invalid_request_error naming `param`.
ApiError InvalidRequest(std::string param, std::string message);

// {"error":{"message","type","param","code"}}
std::string ErrorBody(const ApiError& error);

// An engine or worker Status as the API's error: InvalidArgument, OutOfRange and
// FailedPrecondition 400; Unauthenticated 401; NotFound 404; ResourceExhausted 429 (the queues)
// except a request that can never fit the KV cache, 400; Unavailable 503; DeadlineExceeded 504;
// Cancelled 499; the rest 500. `param` comes from the field the message starts with, in the
// API's names (the engine's max_new_tokens is max_tokens, chat.messages is messages); a message
// about the prompt names `prompt_param`, the field the request gave its prompt in ("prompt" on
// /v1/completions, "messages" on /v1/chat/completions). Messages saying the prompt does not fit
// the context get code "context_length_exceeded", as OpenAI's.
ApiError FromStatus(const Status& status, std::string_view prompt_param = "prompt");

}  // namespace bpt::server::openai
