// POST /v1/completions and /v1/chat/completions bodies as engine requests. Every field is checked
// here, with the API's own names and ranges, so a refusal names what the client wrote
// (`temperature`, `stop[3]`, `messages[2].content[0].type`); the engine checks the request again
// when the worker admits it, against what only it knows (the prompt's tokens, the KV cache).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "chat_message.h"
#include "generation.h"
#include "openai_error.h"
#include "sampling_params.h"

namespace bpt::server::openai {

enum class Route { kCompletions, kChatCompletions };

// The gRPC API's default (server/request_conversion.h) for a chat that leaves max_tokens unset;
// the worker clamps it to what fits. /v1/completions defaults to OpenAI's 16 instead.
inline constexpr int kDefaultChatMaxTokens = 256;
inline constexpr int kDefaultCompletionMaxTokens = 16;
// /v1/completions' `logprobs`, as OpenAI bounds it; chat's `top_logprobs` has the engine's 20.
inline constexpr int kMaxCompletionLogprobs = 5;

struct ParsedRequest {
  Route route = Route::kCompletions;
  std::string model;  // as sent; "" when left out (vLLM's: the served model). The caller checks it.
  // The prompt: exactly one is set.
  std::string prompt_text;            // completions: `prompt` as a string
  std::vector<int32_t> prompt_ids;    // completions: `prompt` as token ids
  std::vector<ChatMessage> messages;  // chat: each message's content parts joined
  // sampling, stopping, top_logprobs, skip_special_tokens; the prompt is left empty.
  GenerationRequest request;
  bool default_max_new_tokens = false;  // chat without max_tokens: the worker clamps it to what fits
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // completions: `logprobs` >= 0; chat: `logprobs` true
  std::string user;
};

struct ParseLimits {
  int max_new_tokens_limit;  // max_tokens' bound (the model's context)
  int vocab_size;            // token ids in `prompt` and `stop_token_ids` are below it
};

// OpenAI's fields, and vLLM's extras that the engine implements as they are (top_k, min_p,
// repetition_penalty, ignore_eos, stop_token_ids, skip_special_tokens). JSON null is unset.
// Refused with 400 naming the field:
// - keys neither API has: "Unrecognized request argument supplied: <key>", as OpenAI words it;
// - OpenAI's fields bptserve does not implement (n > 1, best_of > 1, echo, suffix, logit_bias,
//   tools, tool_choice, functions, function_call, response_format, audio, modalities,
//   prediction, ...), unless null or the value that asks for nothing (n: 1, echo: false,
//   logit_bias: {}, store: false, ...);
// - wrong types, values out of range, stream_options without stream, top_logprobs without
//   logprobs, max_tokens and max_completion_tokens that disagree;
// - invalid UTF-8, malformed JSON, nesting past kMaxJsonDepth, a body that is no object.
// stop takes the engine's limits (kMaxStopStrings strings of kMaxStopStringBytes), past OpenAI's
// 4. seed is any int64, a negative one used as its two's complement bit pattern.
std::variant<ParsedRequest, ApiError> ParseRequest(Route route, std::string_view body, const SamplingParams& defaults,
                                                   const ParseLimits& limits);

}  // namespace bpt::server::openai
