// The protocol's requests (GenerateRequest, PrefillRequest) to the engine's, and the engine's
// results back to the protocol's usage and timings: each conversion in one place. Only the
// message's own shape is checked here (a prompt is set and not empty); everything else is
// checked once, by Engine::Submit (Engine::ValidateRequest and the scheduler's bounds), when the
// worker admits the job.
#pragma once

#include "bptserve/v1/bptserve.pb.h"
#include "engine.h"
#include "engine_worker.h"

namespace bpt::server {

inline constexpr int kDefaultMaxNewTokens = 256;

// Fills job.request (token-id prompts), job.prompt_text or job.chat (tokenized on the worker);
// sampling fields the message leaves unset take `defaults` (ModelInfo::default_sampling).
// The text prompt moves out of `in`, so a long one is held once.
Status ToGenerationJob(bptserve::v1::GenerateRequest& in, const SamplingParams& defaults, GenerationJob* job);
// A Prefill: the prompt as Generate takes it, prefill_only, nothing sampled.
Status ToPrefillJob(bptserve::v1::PrefillRequest& in, const SamplingParams& defaults, GenerationJob* job);

// skip_special_tokens' one default, true (as vLLM), for GenerateOptions and DetokenizeRequest.
template <typename Message>
bool SkipSpecialTokens(const Message& m) {
  return !m.has_skip_special_tokens() || m.skip_special_tokens();
}

// The request's `chat` (errors name `chat.messages[i].role`, ...); the contents move out of `in`.
Status ToChatPrompt(bptserve::v1::ChatPrompt& in, ChatPrompt* out);

// A result's prompt and completion counts, its cached tokens and where they came from.
void ToProtoUsage(const GenerationResult& result, bptserve::v1::Usage* out);
void ToProtoTimings(const GenerationTimings& timings, bptserve::v1::Timings* out);
// What a Prefill ends with: the prompt, what the tiers now hold, what it found cached.
void ToProtoPrefillFinished(const GenerationResult& result, bptserve::v1::PrefillFinished* out);

}  // namespace bpt::server
