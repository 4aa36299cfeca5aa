// GenerateRequest (proto) to the engine's request, with the checks that need no engine work.
#pragma once

#include "bptserve/v1/bptserve.pb.h"
#include "engine.h"
#include "engine_worker.h"

namespace bpt::server {

inline constexpr int kDefaultMaxNewTokens = 256;

// Fills job.request (token-id prompts) or job.prompt_text (text, tokenized on the worker).
// Errors name the field and the limit.
// The text prompt moves out of `in`, so a long one is held once.
Status ToGenerationJob(bptserve::v1::GenerateRequest& in, const Engine& engine, GenerationJob* job);

}  // namespace bpt::server
