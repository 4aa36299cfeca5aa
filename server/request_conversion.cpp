#include "request_conversion.h"

namespace bpt::server {

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
    case bptserve::v1::GenerateRequest::kChat:
      BPT_RETURN_IF_ERROR(ToChatPrompt(*in.mutable_chat(), &job->chat.emplace()));
      break;
    default:
      return InvalidArgument("prompt: set 'text', 'token_ids' or 'chat'");
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
  r.skip_special_tokens = SkipSpecialTokens(in.options());

  const auto& t = in.stopping();
  job->default_max_new_tokens = !t.has_max_new_tokens();
  r.stopping.max_new_tokens = t.has_max_new_tokens() ? t.max_new_tokens() : kDefaultMaxNewTokens;
  r.stopping.stop.assign(t.stop().begin(), t.stop().end());
  r.stopping.stop_token_ids.assign(t.stop_token_ids().begin(), t.stop_token_ids().end());
  r.stopping.ignore_eos = t.ignore_eos();
  return OkStatus();
}

}  // namespace bpt::server
