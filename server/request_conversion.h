// GenerateRequest (proto) to the engine's request. Only the message's own shape is checked here
// (a prompt is set and not empty); everything else is checked once, by Engine::Submit
// (Engine::ValidateRequest and the scheduler's bounds), when the worker admits the job.
#pragma once

#include "bptserve/v1/bptserve.pb.h"
#include "engine.h"
#include "engine_worker.h"

namespace bpt::server {

inline constexpr int kDefaultMaxNewTokens = 256;

// Fills job.request (token-id prompts) or job.prompt_text (text, tokenized on the worker);
// sampling fields the message leaves unset take `defaults` (ModelInfo::default_sampling).
// The text prompt moves out of `in`, so a long one is held once.
Status ToGenerationJob(bptserve::v1::GenerateRequest& in, const SamplingParams& defaults, GenerationJob* job);

}  // namespace bpt::server
