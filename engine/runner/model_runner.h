// The forward pass of a Llama-family model, written once for every backend. A step's tokens go
// through each layer together; the feed-forward runs over sub-blocks of the step so its
// intermediate never exceeds the workspace; the LM head runs only on rows that need logits.
// Every buffer is allocated at construction: nothing grows with the prompt but the KV cache.
#pragma once

#include <memory>
#include <vector>

#include "backend.h"
#include "engine_options.h"
#include "model_config.h"
#include "model_weights.h"
#include "rope.h"

namespace bpt {

class ModelRunner {
 public:
  // Streams the weights into the backend one at a time (each host copy released as it is
  // uploaded) and allocates the workspace. `weights` were opened with `config`, so every size
  // allocated here is backed by the files.
  static StatusOr<std::unique_ptr<ModelRunner>> Create(const ModelConfig& config, const ModelWeights& weights,
                                                       std::unique_ptr<Backend> backend,
                                                       const EngineOptions& options);

  // Runs one step. logits: [number of sequences with needs_logits, vocab], in step order.
  Status Forward(const StepLayout& step, std::vector<float>* logits);
  // Runs one step and samples each sequence that needs logits on the backend
  // (Backend::SamplesOnDevice), rows[i] for the i-th of them; sampled: one per row.
  Status ForwardAndSample(const StepLayout& step, const std::vector<SamplingRow>& rows,
                          std::vector<SampledToken>* sampled);

  Backend& backend() { return *backend_; }

 private:
  struct Layer {
    Tensor input_norm, qkv, qkv_bias, o_proj, o_bias, post_norm, gate_up, down;
    bool has_qkv_bias = false, has_o_bias = false;
  };

  ModelRunner(const ModelConfig& config, std::unique_ptr<Backend> backend, const EngineOptions& options);
  Status Upload(WeightSlot slot, int layer, HostMatrix&& weight);
  Status AllocateWorkspace();
  // The forward pass up to the logits, left in backend memory: [k, vocab] for the k sequences
  // that need logits (zero rows when none does).
  StatusOr<Tensor> ComputeLogits(const StepLayout& step);

  ModelConfig config_;
  std::unique_ptr<Backend> backend_;
  int prefill_block_;  // rows of every [prefill_block, ...] buffer: options.scheduler.prefill_block
  int ffn_sub_block_;  // at most prefill_block_
  int max_running_;    // logit rows: options.scheduler.max_running
  Rope rope_;
  AttentionShape attention_shape_;

  Tensor embed_;       // [vocab, hidden]
  std::vector<Layer> layers_;
  Tensor final_norm_;  // [1, hidden]
  Tensor lm_head_;     // [vocab, hidden]; the same memory as embed_ when tied

  Tensor x_;           // [prefill_block, hidden]  residual stream
  Tensor normed_;      // [prefill_block, hidden]  normed input, then each block's output
  Tensor qkv_;         // [prefill_block, q_dim + 2 * kv_dim]
  Tensor attn_;        // [prefill_block, q_dim]
  Tensor gate_up_;     // [ffn_sub_block, 2 * intermediate]
  Tensor ffn_act_;     // [ffn_sub_block, intermediate]
  Tensor last_;        // [max_running, hidden]
  Tensor last_normed_; // [max_running, hidden]
  Tensor logits_;      // [max_running, vocab]
  std::vector<int64_t> logit_rows_;
};

}  // namespace bpt
