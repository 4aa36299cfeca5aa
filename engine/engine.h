// The engine: a model directory loaded onto a backend, generating for one request at a time
// (not thread-safe; the serving runtime drives it from one thread).
// Prompts are prefilled one block of `prefill_block` tokens per forward step (BPT); decode is
// the same step with one token. Peak memory is weights + KV pool + a workspace fixed at load.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/cpu_attention.h"
#include "engine/kv_block_manager.h"
#include "engine/model_config.h"
#include "engine/model_runner.h"
#include "engine/sampling_params.h"
#include "engine/status.h"
#include "engine/tokenizer.h"

namespace bpt {

struct EngineOptions {
  std::string model_dir;
  int prefill_block = 256;          // tokens per prefill step (see the bench for the choice)
  int ffn_sub_block = 128;          // FFN rows held at once
  int kv_block_size = 64;           // tokens per KV block
  int64_t kv_capacity_tokens = 0;   // 0: the context limit, or what half the free memory holds
  int64_t max_model_len = 0;        // 0: max_position_embeddings from config.json
  int num_threads = 0;              // 0: all hardware threads
  AttentionTiling attention_tiling;
  bool shuffle_kv_blocks = false;   // tests: hand out KV blocks in a random order
};

enum class FinishReason { kEos, kStop, kLength, kCancelled };
const char* FinishReasonName(FinishReason reason);

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when wanted (see Engine::EncodePrompt)
  SamplingParams sampling;
  StoppingParams stopping;
  bool use_prefix_cache = true;  // false: neither reuse cached blocks nor publish this request's
};

struct TokenOutput {
  int32_t token_id;
  std::string text;  // newly final text; may be empty (held back, or a control token)
  float logprob;
  std::vector<std::pair<int32_t, float>> top_logprobs;
};

struct GenerationTimings {
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

// Callbacks from inside Generate. Returning false cancels the request within one step.
class GenerationObserver {
 public:
  virtual ~GenerationObserver() = default;
  virtual bool OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) { return true; }
  virtual bool OnToken(const TokenOutput& token) { return true; }
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

  const ModelConfig& config() const { return config_; }
  // Null in token-ids mode (a model directory without tokenizer.model).
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  int64_t max_model_len() const { return max_model_len_; }
  int64_t kv_capacity_tokens() const { return kv_blocks_.capacity_tokens(); }
  // Tokens a new sequence could claim now (free blocks and cached blocks no sequence holds).
  int64_t kv_free_tokens() const { return kv_blocks_.num_free_blocks() * kv_blocks_.block_size(); }
  int64_t kv_cached_tokens() const { return kv_blocks_.num_cached_blocks() * kv_blocks_.block_size(); }
  MemoryPlan memory_plan() const;
  const std::string& device() const { return device_; }

  // Tokenizes text and prepends BOS as the model's config says.
  StatusOr<std::vector<int32_t>> EncodePrompt(const std::string& text) const;
  // Every check Generate makes before it starts; errors name the field and the limit.
  Status ValidateRequest(const GenerationRequest& request) const;
  StatusOr<GenerationResult> Generate(const GenerationRequest& request, GenerationObserver* observer);

  // The logits after the prompt, from one prefill in blocks: [vocab]. For tests and tools.
  StatusOr<std::vector<float>> PromptLogits(const std::vector<int32_t>& prompt);

 private:
  Engine(ModelConfig config, std::unique_ptr<Tokenizer> tokenizer, std::unique_ptr<ModelRunner> runner,
         int64_t num_kv_blocks, const EngineOptions& options);
  // Prefills positions [start, prompt.size()) in blocks; logits of the last token. *computed
  // follows the positions whose KV is in the cache.
  Status Prefill(const std::vector<int32_t>& tokens, int64_t start, BlockTable* table,
                 GenerationObserver* observer, bool* cancelled, int64_t* computed, std::vector<float>* logits);
  Status Step(const int32_t* tokens, int32_t count, int64_t start, const BlockTable* table,
              bool needs_logits, std::vector<float>* logits);
  bool IsEos(int32_t id) const;

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ModelRunner> runner_;
  KvBlockManager kv_blocks_;
  EngineOptions options_;
  int64_t max_model_len_;
  std::string device_ = "cpu";
  StepLayout step_;  // reused by every step
};

}  // namespace bpt
