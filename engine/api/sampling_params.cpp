#include "sampling_params.h"

#include <cmath>

namespace bpt {
namespace {

std::string Num(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

Status ValidateSamplingParams(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0)
    return InvalidArgument("temperature must be a finite number >= 0 (0 is greedy), got " + Num(p.temperature));
  if (p.top_k < 0) return InvalidArgument("top_k must be >= 0 (0 disables it), got " + std::to_string(p.top_k));
  if (!std::isfinite(p.top_p) || p.top_p <= 0 || p.top_p > 1)
    return InvalidArgument("top_p must be in (0, 1], got " + Num(p.top_p));
  if (!std::isfinite(p.min_p) || p.min_p < 0 || p.min_p > 1)
    return InvalidArgument("min_p must be in [0, 1], got " + Num(p.min_p));
  if (!std::isfinite(p.repetition_penalty) || p.repetition_penalty <= 0)
    return InvalidArgument("repetition_penalty must be a finite number > 0 (1 disables it), got " +
                           Num(p.repetition_penalty));
  if (!std::isfinite(p.presence_penalty) || std::fabs(p.presence_penalty) > 2)
    return InvalidArgument("presence_penalty must be in [-2, 2], got " + Num(p.presence_penalty));
  if (!std::isfinite(p.frequency_penalty) || std::fabs(p.frequency_penalty) > 2)
    return InvalidArgument("frequency_penalty must be in [-2, 2], got " + Num(p.frequency_penalty));
  if (p.top_logprobs < 0 || p.top_logprobs > kMaxTopLogprobs)
    return InvalidArgument("top_logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) + "], got " +
                           std::to_string(p.top_logprobs));
  return OkStatus();
}

Status ValidateStoppingParams(const StoppingParams& p, int vocab_size, int max_new_tokens_limit) {
  if (p.max_new_tokens < 1 || p.max_new_tokens > max_new_tokens_limit)
    return InvalidArgument("max_new_tokens must be in [1, " + std::to_string(max_new_tokens_limit) +
                           "], got " + std::to_string(p.max_new_tokens));
  if (p.stop.size() > static_cast<size_t>(kMaxStopStrings))
    return InvalidArgument("stop has " + std::to_string(p.stop.size()) + " strings; at most " +
                           std::to_string(kMaxStopStrings) + " are allowed");
  for (size_t i = 0; i < p.stop.size(); ++i) {
    if (p.stop[i].empty()) return InvalidArgument("stop[" + std::to_string(i) + "] is empty");
    if (p.stop[i].size() > kMaxStopStringBytes)
      return InvalidArgument("stop[" + std::to_string(i) + "] is " + std::to_string(p.stop[i].size()) +
                             " bytes; at most " + std::to_string(kMaxStopStringBytes) + " are allowed");
  }
  for (size_t i = 0; i < p.stop_token_ids.size(); ++i) {
    const int32_t id = p.stop_token_ids[i];
    if (id < 0 || id >= vocab_size)
      return InvalidArgument("stop_token_ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                             " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
  }
  return OkStatus();
}

}  // namespace bpt
