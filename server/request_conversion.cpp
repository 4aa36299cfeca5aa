#include "request_conversion.h"

namespace bpt::server {
namespace {

// The prompt oneof, which GenerateRequest and PrefillRequest share (the same fields, the same
// numbers): token ids into the request, a text or a chat for the tokenizer pool.
template <typename Request>
Status ToJobPrompt(Request& in, GenerationJob* job) {
  switch (in.prompt_case()) {
    case Request::kText:
      if (in.text().empty()) return InvalidArgument("prompt: 'text' is empty");
      job->prompt_text = std::move(*in.mutable_text());
      return OkStatus();
    case Request::kTokenIds:
      if (in.token_ids().ids().empty()) return InvalidArgument("prompt: 'token_ids' is empty");
      job->request.prompt.assign(in.token_ids().ids().begin(), in.token_ids().ids().end());
      return OkStatus();
    case Request::kChat:
      return ToChatPrompt(*in.mutable_chat(), &job->chat.emplace());
    default:
      return InvalidArgument("prompt: set 'text', 'token_ids' or 'chat'");
  }
}

void ToProtoCachedFrom(const CachedTokenSources& in, bptserve::v1::CachedTokenSources* out) {
  out->set_pool(in.pool);
  out->set_host(in.host);
  out->set_disk(in.disk);
  out->set_remote(in.remote);
}

}  // namespace

Status ToChatPrompt(bptserve::v1::ChatPrompt& in, ChatPrompt* out) {
  if (in.messages().empty()) return InvalidArgument("chat.messages: empty; a chat has at least one message");
  if (in.messages_size() > kMaxChatMessages)
    return InvalidArgument("chat.messages: " + std::to_string(in.messages_size()) + " messages, more than " +
                           std::to_string(kMaxChatMessages));
  out->messages.reserve(static_cast<size_t>(in.messages_size()));
  for (int i = 0; i < in.messages_size(); ++i) {
    bptserve::v1::ChatMessage& m = *in.mutable_messages(i);
    const std::string field = "chat.messages[" + std::to_string(i) + "].role";
    if (m.role().empty()) return InvalidArgument(field + " is empty");
    if (m.role().size() > kMaxChatRoleBytes)
      return InvalidArgument(field + ": " + std::to_string(m.role().size()) + " bytes, more than " +
                             std::to_string(kMaxChatRoleBytes));
    out->messages.push_back({std::move(*m.mutable_role()), std::move(*m.mutable_content())});
  }
  out->continue_final_message = in.continue_final_message();
  return OkStatus();
}

Status ToGenerationJob(bptserve::v1::GenerateRequest& in, const SamplingParams& defaults, GenerationJob* job) {
  BPT_RETURN_IF_ERROR(ToJobPrompt(in, job));
  GenerationRequest& r = job->request;
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
  r.skip_special_tokens = SkipSpecialTokens(in.options());

  const auto& t = in.stopping();
  job->default_max_new_tokens = !t.has_max_new_tokens();
  r.stopping.max_new_tokens = t.has_max_new_tokens() ? t.max_new_tokens() : kDefaultMaxNewTokens;
  r.stopping.stop.assign(t.stop().begin(), t.stop().end());
  r.stopping.stop_token_ids.assign(t.stop_token_ids().begin(), t.stop_token_ids().end());
  r.stopping.ignore_eos = t.ignore_eos();
  return OkStatus();
}

Status ToPrefillJob(bptserve::v1::PrefillRequest& in, const SamplingParams& defaults, GenerationJob* job) {
  BPT_RETURN_IF_ERROR(ToJobPrompt(in, job));
  GenerationRequest& r = job->request;
  r.prefill_only = true;
  r.retain_s = in.retain_s();  // the engine checks it: >= 0, a disk tier, the budget
  r.priority = in.priority();
  r.use_prefix_cache = true;  // its KV is what a prefill keeps
  // Nothing is sampled; the engine validates these as any request's, so they are the valid
  // defaults and the one token every request may have (within the context limit, as Generate's).
  r.sampling = defaults;
  r.stopping.max_new_tokens = 1;
  return OkStatus();
}

void ToProtoUsage(const GenerationResult& g, bptserve::v1::Usage* out) {
  out->set_prompt_tokens(g.prompt_tokens);
  out->set_completion_tokens(static_cast<int64_t>(g.token_ids.size()));
  out->set_cached_prompt_tokens(g.cached_prompt_tokens);
  ToProtoCachedFrom(g.cached_from, out->mutable_cached_from());
}

void ToProtoTimings(const GenerationTimings& t, bptserve::v1::Timings* out) {
  out->set_queue_s(t.queue_s);
  out->set_prefill_s(t.prefill_s);
  out->set_time_to_first_token_s(t.time_to_first_token_s);
  out->set_decode_s(t.decode_s);
  out->set_kv_load_s(t.kv_load_s);
}

void ToProtoPrefillFinished(const GenerationResult& g, bptserve::v1::PrefillFinished* out) {
  out->set_prompt_tokens(g.prompt_tokens);
  out->set_cached_tokens(g.stored_prompt_tokens);
  out->set_cached_prompt_tokens(g.cached_prompt_tokens);
  ToProtoCachedFrom(g.cached_from, out->mutable_cached_from());
  ToProtoTimings(g.timings, out->mutable_timings());
  // No token: the first one's time (the worker adds its inbox wait to it) means nothing here.
  out->mutable_timings()->clear_time_to_first_token_s();
  out->mutable_timings()->clear_decode_s();
}

}  // namespace bpt::server
