// One request's reply in OpenAI's JSON: the whole completion object, or its stream of
// Server-Sent Events as OpenAI sends them:
//   chat:        the role chunk ({"delta": {"role": "assistant", "content": ""}}), content chunks,
//                the finish chunk ({"delta": {}, "finish_reason": ...}), the usage chunk
//                ("choices": []) when asked, then `data: [DONE]`;
//   completions: text chunks, the finish chunk ({"text": "", "finish_reason": ...}), the usage
//                chunk when asked, then `data: [DONE]`.
// With stream_options.include_usage every chunk before the usage chunk has "usage": null, as
// OpenAI's. finish_reason: EOS and stop strings or ids "stop", max_tokens "length"; a cancelled
// request "abort", vLLM's word (the caller normally ends one with an error instead).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "generation.h"
#include "logprobs_json.h"
#include "openai_error.h"
#include "openai_request.h"

namespace bpt::server::openai {

struct ResponseContext {
  Route route = Route::kCompletions;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;    // the served model's name
  bool include_usage = false;
  bool logprobs = false;
  int top_logprobs = 0;
  // One token's text, for logprobs (from the tokenizer); needed only when logprobs is set.
  std::function<std::string(int32_t)> token_text;
};

class ResponseWriter {
 public:
  explicit ResponseWriter(ResponseContext context);

  // Streaming: each returns the bytes to send next, possibly "".
  std::string StreamStart();  // chat: the role chunk; completions: ""
  // One chunk for these tokens: their text (and logprobs); "" when neither has anything.
  std::string StreamTokens(std::span<const TokenOutput> tokens);
  // The finish chunk, the usage chunk if asked, `data: [DONE]`.
  std::string StreamEnd(const GenerationResult& result);
  // ": text\n\n", which SSE clients skip (a keep-alive); line breaks in text become spaces.
  static std::string StreamComment(std::string_view text);
  // A failure after the stream began: `data: {"error": ...}` then `data: [DONE]`.
  static std::string StreamError(const ApiError& error);

  // Whole responses: every token, then the body.
  void Add(const TokenOutput& token);
  std::string Body(const GenerationResult& result);  // the text_completion / chat.completion object

  // GET /v1/models: the one served model.
  static std::string ModelList(const std::string& model, int64_t created, int64_t max_model_len);

 private:
  bool chat() const { return context_.route == Route::kChatCompletions; }
  nlohmann::ordered_json Object(const char* object) const;
  nlohmann::ordered_json Chunk(nlohmann::ordered_json choice) const;
  nlohmann::ordered_json ChoiceLogprobs();
  void AddLogprobs(const TokenOutput& token);

  const ResponseContext context_;
  LogprobsJson logprobs_;
  int64_t text_code_points_ = 0;  // of the text so far: completions' text_offset
};

}  // namespace bpt::server::openai
