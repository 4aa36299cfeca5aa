// The engine: a model directory loaded onto a backend, serving many requests by continuous
// batching (engine/scheduler.h). Each forward step carries up to `prefill_block` tokens: the
// decode token of every running request and prefill chunks of waiting ones (BPT). Peak memory
// is weights + KV pool + a workspace fixed at load. Not thread-safe: one thread drives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cpu_attention.h"
#include "kv_block_manager.h"
#include "model_config.h"
#include "model_runner.h"
#include "sampler.h"
#include "sampling_params.h"
#include "scheduler.h"
#include "status.h"
#include "tokenizer.h"

namespace bpt {

struct EngineOptions {
  std::string model_dir;
  std::string device = "cpu";       // cpu, cuda, or auto (cuda when a GPU is visible)
  int prefill_block = 256;          // tokens per prefill step (see the bench for the choice)
  int ffn_sub_block = 128;          // FFN rows held at once
  int kv_block_size = 64;           // tokens per KV block
  int64_t kv_capacity_tokens = 0;   // 0: from kv_memory_fraction (on the CPU, at most the context limit)
  double kv_memory_fraction = 0.90; // of the memory left after weights and workspace
  int64_t max_model_len = 0;        // 0: max_position_embeddings from config.json
  int num_threads = 0;              // 0: all hardware threads
  AttentionTiling attention_tiling;
  bool shuffle_kv_blocks = false;   // tests: hand out KV blocks in a random order
  int max_running = 16;             // sequences batched into one step
  int max_waiting = 64;             // requests queued for a place in the batch
  bool cuda_graphs = true;          // CUDA: decode steps replay captured graphs
  bool device_sampling = true;      // CUDA: sample on the device; only chosen ids come back
};

enum class FinishReason { kEos, kStop, kLength, kCancelled };
const char* FinishReasonName(FinishReason reason);

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when wanted (see Engine::EncodePrompt)
  SamplingParams sampling;
  StoppingParams stopping;
  bool use_prefix_cache = true;  // false: neither reuse cached blocks nor publish this request's
  int priority = 0;              // lower runs first; equal priorities in arrival order
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
};

struct GenerationResult {
  FinishReason finish_reason = FinishReason::kLength;
  std::vector<int32_t> token_ids;  // every generated id, the EOS or stop token included
  std::string text;                // the streamed text, concatenated
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose KV came from the prefix cache
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

struct MemoryPlan {
  int64_t weight_bytes;
  int64_t workspace_bytes;
  int64_t kv_bytes_per_token;
  int64_t kv_capacity_tokens;
};

class Engine {
 public:
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  ~Engine();

  const ModelConfig& config() const { return config_; }
  // Null in token-ids mode (a model directory without tokenizer.model).
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  int64_t max_model_len() const { return max_model_len_; }
  int64_t kv_capacity_tokens() const { return kv_blocks_.capacity_tokens(); }
  // Tokens a new sequence could claim now (free blocks and cached blocks no sequence holds).
  int64_t kv_free_tokens() const { return kv_blocks_.num_free_blocks() * kv_blocks_.block_size(); }
  MemoryPlan memory_plan() const;
  const std::string& device() const { return device_; }
  std::string dtype() const;  // what the backend holds: float32 on the CPU, bfloat16 on CUDA

  // Tokenizes text and, with add_bos, prepends BOS as the model's config says. Safe to call from
  // any thread. Past max_tokens (BOS included) it stops at once with InvalidArgument, the only
  // InvalidArgument it returns.
  StatusOr<std::vector<int32_t>> EncodePrompt(std::string_view text, int64_t max_tokens = INT64_MAX,
                                              bool add_bos = true) const;
  // Every check Submit makes before queueing; errors name the field and the limit.
  Status ValidateRequest(const GenerationRequest& request) const;

  // Continuous batching. Submit queues a request (ResourceExhausted when it can never fit or
  // the queue is full); each Step runs one forward pass over the decodes of every running
  // request and prefill chunks of waiting ones, and reports through the observers. The
  // observer must outlive the request (until its OnFinished).
  Status Submit(GenerationRequest request, GenerationObserver* observer);
  Status Step();
  bool HasWork() const { return !requests_.empty(); }
  size_t num_running() const { return scheduler_.num_running(); }
  size_t num_waiting() const { return scheduler_.num_waiting(); }
  int64_t num_preemptions() const { return scheduler_.num_preemptions(); }
  int64_t last_step_tokens() const { return last_step_tokens_; }
  // Sequences the last step ran (decodes and prefill chunks): more than one means batched.
  int64_t last_step_sequences() const { return last_step_sequences_; }

  // Submit, then step until this request ends (others submitted meanwhile advance too).
  StatusOr<GenerationResult> Generate(const GenerationRequest& request, GenerationObserver* observer);

  // The logits after the prompt, from one prefill in blocks, outside the scheduler: [vocab].
  // For tests and tools; call it while no request is in flight.
  StatusOr<std::vector<float>> PromptLogits(const std::vector<int32_t>& prompt);

 private:
  struct Request;
  Engine(ModelConfig config, std::unique_ptr<Tokenizer> tokenizer, std::unique_ptr<ModelRunner> runner,
         int64_t num_kv_blocks, const EngineOptions& options);
  // Streams the request's next token and checks its stop conditions; true when finished.
  StatusOr<bool> ProcessToken(int64_t id, Request& r, const SampledToken& sampled);
  void FinishRequest(int64_t id, const StatusOr<GenerationResult>& result);
  bool IsEos(int32_t id) const;

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ModelRunner> runner_;
  KvBlockManager kv_blocks_;
  EngineOptions options_;
  int64_t max_model_len_;
  Scheduler scheduler_;
  std::map<int64_t, std::unique_ptr<Request>> requests_;
  int64_t next_request_id_ = 1;
  int64_t last_step_tokens_ = 0;
  int64_t last_step_sequences_ = 0;
  std::string device_;
  StepLayout step_;                 // reused by every step
  std::vector<float> step_logits_;  // [sequences needing logits, vocab], when sampled here
  std::vector<SamplingRow> step_sampling_;    // when the backend samples: one per logits row
  std::vector<SampledToken> step_sampled_;
};

}  // namespace bpt
