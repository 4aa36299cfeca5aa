// What a request asks of token selection and of stopping, and their validation. Messages name
// the field and the allowed range, so the server can pass them to the client unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "status.h"

namespace bpt {

struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy
  int top_k = 0;                    // 0: all tokens
  float top_p = 1.0f;               // (0, 1]
  float min_p = 0.0f;               // [0, 1]
  float repetition_penalty = 1.0f;  // > 0; 1: off. On prompt and generated tokens (vLLM)
  float presence_penalty = 0.0f;    // [-2, 2]; on generated tokens
  float frequency_penalty = 0.0f;   // [-2, 2]; on generated tokens
  std::optional<uint64_t> seed;     // the same seed gives the same tokens
  int top_logprobs = 0;             // [0, 20]
};

struct StoppingParams {
  int max_new_tokens = 256;
  std::vector<std::string> stop;          // matched on detokenized text; not emitted
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
};

inline constexpr int kMaxStopStrings = 16;
inline constexpr size_t kMaxStopStringBytes = 256;
inline constexpr int kMaxTopLogprobs = 20;

Status ValidateSamplingParams(const SamplingParams& p);
// vocab_size bounds stop_token_ids; max_new_tokens_limit bounds max_new_tokens.
Status ValidateStoppingParams(const StoppingParams& p, int vocab_size, int max_new_tokens_limit);

}  // namespace bpt
