// The engine's facade, the one header the server sees: a model directory loaded onto a backend,
// serving many requests by continuous batching (runtime/scheduler.h). Each forward step carries up to `prefill_block` tokens: the
// decode token of every running request and prefill chunks of waiting ones (BPT). Peak memory
// is weights + KV pool + a workspace fixed at load. Not thread-safe: one thread drives it. The
// parts behind it (engine/<part>/) are hidden: their headers are not on the server's include path.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat_message.h"
#include "engine_options.h"
#include "generation.h"
#include "kv_tier_stats.h"
#include "status.h"

namespace bpt {

struct MemoryPlan {
  int64_t weight_bytes;
  int64_t workspace_bytes;
  int64_t kv_bytes_per_token;
  int64_t kv_capacity_tokens;
};

// What GetModelInfo reports of the loaded model.
struct ModelInfo {
  std::string architecture;  // config.json's architectures[0]
  int64_t vocab_size = 0;
  int64_t max_model_len = 0;
  bool token_ids_mode = false;  // no tokenizer: prompts are token ids, outputs have no text
  bool has_chat_template = false;  // RenderChat works: a template that parses, and a tokenizer
  std::string device;           // cpu or cuda, as chosen
  std::string dtype;            // what activations are computed in: float32 on the CPU, bfloat16 on CUDA
  ElementType weight_dtype = ElementType::kAuto;  // as stored, resolved (never kAuto once loaded)
  ElementType kv_dtype = ElementType::kAuto;
  std::string attention_kernels;  // e.g. cpu-avx512, cuda
  std::string kv_tiers;           // the tiers below the pool in use, fastest first: "host,disk,remote"; empty: none
  // What a request's unset sampling fields become (EngineOptions::generation_config).
  SamplingParams default_sampling;
};

class Engine {
 public:
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  // OK when `device` (cpu, cuda or auto) can be used on this machine; for cuda, that the plugin
  // loads and sees a GPU (FailedPrecondition says which is missing). Before any model is read.
  static Status CheckDevice(const std::string& device);
  ~Engine();

  const ModelInfo& model_info() const;
  const EngineOptions& options() const;  // as given to Create
  int64_t kv_capacity_tokens() const;
  // Tokens a new sequence could claim now (free blocks and cached blocks no sequence holds).
  int64_t kv_free_tokens() const;
  MemoryPlan memory_plan() const;

  // Tokenizes text and, with add_special_tokens, puts the tokenizer's special tokens around it as
  // HF's add_special_tokens=True does (a SentencePiece model's BOS: config.json's bos_token_id
  // when set). Safe to call from any thread. Past max_tokens (special tokens included) it stops
  // at once with OutOfRange (the server words it for its client); InvalidArgument is text that
  // is not UTF-8.
  StatusOr<std::vector<int32_t>> EncodePrompt(std::string_view text, int64_t max_tokens = INT64_MAX,
                                              bool add_special_tokens = true) const;
  // The text of ids, whole (no streaming state), as HF's decode(ids, skip_special_tokens).
  // Safe to call from any thread.
  StatusOr<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // The prompt text of a conversation, from the model's chat template (tokenizer_config.json or
  // chat_template.jinja): with the generation prompt, or, continue_final_message, leaving the
  // last message open. Its special tokens are written out: encode it without adding any. Safe
  // to call from any thread. InvalidArgument with the template's message when it refuses the
  // conversation; FailedPrecondition when the model has no template, or one that does not parse.
  StatusOr<std::string> RenderChat(std::span<const ChatMessage> messages, bool continue_final_message) const;
  // Longest piece of the tokenizer in bytes (for bounds on text length); 0 in token-ids mode.
  int max_piece_bytes() const;
  // The request's own checks (prompt ids, context limit, sampling and stopping parameters, what
  // token-ids mode allows); errors name the field and the limit. Submit runs them, then the
  // scheduler's bounds (the queue, the KV pool).
  Status ValidateRequest(const GenerationRequest& request) const;

  // Continuous batching. Submit queues a request (ResourceExhausted when it can never fit or
  // the queue is full); each Step runs one forward pass over the decodes of every running
  // request and prefill chunks of waiting ones, and reports through the observers. The
  // observer must outlive the request (until its OnFinished).
  Status Submit(GenerationRequest request, GenerationObserver* observer);
  // Nothing to return: whatever goes wrong in a step (a backend error) ends that step's
  // requests through their observers, and the engine goes on with the rest.
  void Step();
  bool HasWork() const;
  size_t num_running() const;
  size_t num_waiting() const;
  int64_t num_preemptions() const;
  int64_t last_step_tokens() const;
  // Sequences the last step ran (decodes and prefill chunks): more than one means batched.
  int64_t last_step_sequences() const;

  // Forgets the pool's cached blocks that no request holds, as vLLM's reset_prefix_cache: later
  // requests find their documents only in the tiers below (or recompute them).
  void ResetPrefixCache();
  // What the KV tiers did since the last call (empty when there are none).
  KvTierStats TakeKvTierStats();
  // The drain: waits until every queued write to the tiers is done, then writes again, once,
  // the chunks a tier that was down missed (where the pool still holds them), until `deadline`;
  // false when some were left. Steps meanwhile are the caller's (call it once no request runs).
  bool FlushKvTiers(std::chrono::steady_clock::time_point deadline);

  // Submit, then step until this request ends (others submitted meanwhile advance too).
  StatusOr<GenerationResult> Generate(const GenerationRequest& request, GenerationObserver* observer);

  // The logits after the prompt, from one prefill in blocks, outside the scheduler: [vocab].
  // For tests and tools; call it while no request is in flight.
  StatusOr<std::vector<float>> PromptLogits(const std::vector<int32_t>& prompt);

 private:
  class Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bpt
