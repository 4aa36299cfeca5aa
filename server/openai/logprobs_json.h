// A choice's `logprobs` in either route's format, built token by token.
//   completions: {"tokens", "token_logprobs", "top_logprobs": [{text: logprob}], "text_offset"}
//   chat:        {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}],
//                 "refusal": null}
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "generation.h"

namespace bpt::server::openai {

// A logprob as JSON can hold it: the shortest decimal that reads back as the float (-0.1, not
// -0.10000000149011612), and OpenAI's -9999.0 for a token the sampler ruled out (-inf).
double LogprobValue(float logprob);

class LogprobsJson {
 public:
  // token_text: one token's text, possibly a fragment of a UTF-8 character; it is written as
  // a string with U+FFFD for the fragment, and as its raw bytes in chat's `bytes`.
  LogprobsJson(bool chat, int top_logprobs, std::function<std::string(int32_t)> token_text);

  // text_offset: the code points of the completion's text before this token (completions only).
  void Add(const TokenOutput& token, int64_t text_offset);
  bool empty() const { return count_ == 0; }
  // The tokens added since the last Take.
  nlohmann::ordered_json Take();

 private:
  nlohmann::ordered_json Alternative(int32_t token_id, float logprob) const;

  const bool chat_;
  const size_t top_logprobs_;
  const std::function<std::string(int32_t)> token_text_;
  size_t count_ = 0;
  nlohmann::ordered_json content_;  // chat
  nlohmann::ordered_json tokens_, token_logprobs_, top_logprobs_list_, text_offset_;  // completions
};

}  // namespace bpt::server::openai
