#include "request_conversion.h"

namespace bpt::server {

Status ToGenerationJob(bptserve::v1::GenerateRequest& in, const SamplingParams& defaults, GenerationJob* job) {
  GenerationRequest& r = job->request;
  switch (in.prompt_case()) {
    case bptserve::v1::GenerateRequest::kText:
      if (in.text().empty()) return InvalidArgument("prompt: 'text' is empty");
      job->prompt_text = std::move(*in.mutable_text());
      break;
    case bptserve::v1::GenerateRequest::kTokenIds:
      if (in.token_ids().ids().empty()) return InvalidArgument("prompt: 'token_ids' is empty");
      r.prompt.assign(in.token_ids().ids().begin(), in.token_ids().ids().end());
      break;
    default:
      return InvalidArgument("prompt: set 'text' or 'token_ids'");
  }

  const auto& s = in.sampling();
  r.sampling = defaults;
  if (s.has_temperature()) r.sampling.temperature = s.temperature();
  if (s.has_top_k()) r.sampling.top_k = s.top_k();
  if (s.has_top_p()) r.sampling.top_p = s.top_p();
  if (s.has_min_p()) r.sampling.min_p = s.min_p();
  if (s.has_repetition_penalty()) r.sampling.repetition_penalty = s.repetition_penalty();
  if (s.has_presence_penalty()) r.sampling.presence_penalty = s.presence_penalty();
  if (s.has_frequency_penalty()) r.sampling.frequency_penalty = s.frequency_penalty();
  if (s.has_seed()) r.sampling.seed = s.seed();
  r.sampling.top_logprobs = in.options().top_logprobs();
  r.use_prefix_cache = !in.options().bypass_prefix_cache();
  r.priority = in.options().priority();

  const auto& t = in.stopping();
  job->default_max_new_tokens = !t.has_max_new_tokens();
  r.stopping.max_new_tokens = t.has_max_new_tokens() ? t.max_new_tokens() : kDefaultMaxNewTokens;
  r.stopping.stop.assign(t.stop().begin(), t.stop().end());
  r.stopping.stop_token_ids.assign(t.stop_token_ids().begin(), t.stop_token_ids().end());
  r.stopping.ignore_eos = t.ignore_eos();
  return OkStatus();
}

}  // namespace bpt::server
