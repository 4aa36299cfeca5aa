// A generation request and what comes back from it: the types the engine's facade and its
// scheduler share, and the server converts from and to its protocol.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sampling_params.h"
#include "status.h"

namespace bpt {

enum class FinishReason { kEos, kStop, kLength, kCancelled };
const char* FinishReasonName(FinishReason reason);

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when wanted (see Engine::EncodePrompt)
  SamplingParams sampling;
  StoppingParams stopping;
  bool use_prefix_cache = true;  // false: neither reuse cached blocks nor publish this request's
  int priority = 0;              // lower runs first; equal priorities in arrival order
  bool skip_special_tokens = true;  // special tokens' text left out of TokenOutput::text
  // Roots every cache key of the request (pool and tiers): requests match each other's cached
  // KV only under the same salt. The server sets it per API key when asked to.
  std::string cache_salt;
  // A document for the cache (the Prefill RPC): the prompt is prefilled and its KV written
  // through to every tier; nothing is generated, and the request ends once the write is done.
  bool prefill_only = false;
  // Pins the prompt's chunks for this many seconds (0: not) in the tier that pins: the disk, or
  // without one the host-memory tier.
  int64_t retain_s = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline;  // then DEADLINE_EXCEEDED
};

struct TokenOutput {
  int32_t token_id;
  std::string text;  // newly final text; may be empty (held back, or a control token)
  float logprob;
  std::vector<std::pair<int32_t, float>> top_logprobs;
};

struct GenerationTimings {
  double queue_s = 0;  // from Submit to the first step that ran it
  double prefill_s = 0;
  double time_to_first_token_s = 0;
  double decode_s = 0;
  double kv_load_s = 0;  // waiting for KV chunks from the tiers below the pool
};

// Where a request's cached prompt tokens came from.
struct CachedTokenSources {
  int64_t pool = 0;
  int64_t host = 0;
  int64_t disk = 0;
  int64_t remote = 0;
};

struct GenerationResult {
  FinishReason finish_reason = FinishReason::kLength;
  std::vector<int32_t> token_ids;  // every generated id, the EOS or stop token included
  std::string text;                // the streamed text, concatenated
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose KV came from the prefix cache or a tier
  CachedTokenSources cached_from;    // sums to cached_prompt_tokens
  // prefill_only: prompt tokens whose KV the tiers (or, with none, the pool) now hold.
  int64_t stored_prompt_tokens = 0;
  GenerationTimings timings;
};

// Callbacks from inside Engine::Step, on the thread that runs it.
class GenerationObserver {
 public:
  virtual ~GenerationObserver() = default;
  // Polled before every step, queued or running: true ends the request as cancelled.
  virtual bool Cancelled() const { return false; }
  // Returning false cancels the request within one step.
  virtual bool OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) { return true; }
  virtual bool OnToken(const TokenOutput& token) { return true; }
  // Exactly once per submitted request: its result, or the status that ended it.
  virtual void OnFinished(const StatusOr<GenerationResult>& result) {}
};

}  // namespace bpt
