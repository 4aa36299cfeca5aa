#include "model_runner.h"

#include <algorithm>
#include <new>
#include <string>

#include "check.h"

namespace bpt {

ModelRunner::ModelRunner(const ModelConfig& config, std::unique_ptr<Backend> backend,
                         const EngineOptions& options)
    : config_(config),
      backend_(std::move(backend)),
      prefill_block_(options.scheduler.prefill_block),
      ffn_sub_block_(std::min(options.ffn_sub_block, options.scheduler.prefill_block)),
      max_running_(options.scheduler.max_running),
      rope_(config, options.rope_position_gap),
      attention_shape_{config.num_heads, config.num_kv_heads, config.head_dim, config.sliding_window} {}

StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(const ModelConfig& config, const ModelWeights& weights,
                                                           std::unique_ptr<Backend> backend,
                                                           const EngineOptions& options) {
  if (options.scheduler.prefill_block <= 0) return InvalidArgument("prefill_block must be positive");
  if (options.ffn_sub_block <= 0) return InvalidArgument("ffn_sub_block must be positive");
  if (options.scheduler.max_running <= 0) return InvalidArgument("max_running must be positive");
  const RopePositionGap& gap = options.rope_position_gap;
  if (gap.start < 0 || gap.length < 0 || gap.length > model_limits::kMaxPositions)
    return InvalidArgument("rope_position_gap (start " + std::to_string(gap.start) + ", length " +
                           std::to_string(gap.length) + "): start must be non-negative, length in [0, " +
                           std::to_string(model_limits::kMaxPositions) + "]");
  // The sizes are the files' own, but a model can still be larger than this machine's memory:
  // that is an error to report, not an exception to end the process with.
  try {
    std::unique_ptr<ModelRunner> runner(new ModelRunner(config, std::move(backend), options));
    runner->layers_.resize(config.num_layers);
    BPT_RETURN_IF_ERROR(weights.Stream([&](WeightSlot slot, int layer, HostMatrix&& weight) {
      return runner->Upload(slot, layer, std::move(weight));
    }));
    if (config.tie_word_embeddings) runner->lm_head_ = runner->embed_;
    BPT_RETURN_IF_ERROR(runner->AllocateWorkspace());
    return runner;
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("out of host memory while loading the model's weights and workspace");
  }
}

Status ModelRunner::Upload(WeightSlot slot, int layer, HostMatrix&& weight) {
  BPT_ASSIGN_OR_RETURN(Tensor t, backend_->UploadWeight(std::move(weight)));
  BPT_CHECK(layer < static_cast<int>(layers_.size()),
            "the weight loader handed over layer " + std::to_string(layer) + " of a " +
                std::to_string(layers_.size()) + "-layer model");
  Layer* l = layer >= 0 ? &layers_[layer] : nullptr;
  switch (slot) {
    case WeightSlot::kEmbed: embed_ = t; break;
    case WeightSlot::kFinalNorm: final_norm_ = t; break;
    case WeightSlot::kLmHead: lm_head_ = t; break;
    case WeightSlot::kInputNorm: l->input_norm = t; break;
    case WeightSlot::kPostNorm: l->post_norm = t; break;
    case WeightSlot::kQkv: l->qkv = t; break;
    case WeightSlot::kQkvBias:
      l->qkv_bias = t;
      l->has_qkv_bias = true;
      break;
    case WeightSlot::kOProj: l->o_proj = t; break;
    case WeightSlot::kOBias:
      l->o_bias = t;
      l->has_o_bias = true;
      break;
    case WeightSlot::kGateUp: l->gate_up = t; break;
    case WeightSlot::kDown: l->down = t; break;
  }
  return OkStatus();
}

Status ModelRunner::AllocateWorkspace() {
  const int64_t b = prefill_block_, f = ffn_sub_block_, r = max_running_;
  const int64_t h = config_.hidden_size, ffn = config_.intermediate_size;
  BPT_ASSIGN_OR_RETURN(x_, backend_->AllocateActivation(b, h, Precision::kCompute));
  BPT_ASSIGN_OR_RETURN(normed_, backend_->AllocateActivation(b, h, Precision::kCompute));
  BPT_ASSIGN_OR_RETURN(qkv_, backend_->AllocateActivation(b, config_.q_dim() + 2 * config_.kv_dim(), Precision::kCompute));
  BPT_ASSIGN_OR_RETURN(attn_, backend_->AllocateActivation(b, config_.q_dim(), Precision::kCompute));
  BPT_ASSIGN_OR_RETURN(gate_up_, backend_->AllocateActivation(f, 2 * ffn, Precision::kCompute));
  BPT_ASSIGN_OR_RETURN(ffn_act_, backend_->AllocateActivation(f, ffn, Precision::kCompute));
  BPT_ASSIGN_OR_RETURN(last_, backend_->AllocateActivation(r, h, Precision::kCompute));
  BPT_ASSIGN_OR_RETURN(last_normed_, backend_->AllocateActivation(r, h, Precision::kCompute));
  BPT_ASSIGN_OR_RETURN(logits_, backend_->AllocateActivation(r, config_.vocab_size, Precision::kFloat32));
  logit_rows_.reserve(r);
  return OkStatus();
}

Status ModelRunner::Forward(const StepLayout& step, std::vector<float>* logits) {
  BPT_ASSIGN_OR_RETURN(Tensor out, ComputeLogits(step));
  logits->resize(out.rows * config_.vocab_size);
  if (out.rows == 0) return OkStatus();
  return backend_->CopyToHost(out, logits->data());
}

Status ModelRunner::ForwardAndSample(const StepLayout& step, const std::vector<SamplingRow>& rows,
                                     std::vector<SampledToken>* sampled) {
  BPT_ASSIGN_OR_RETURN(Tensor out, ComputeLogits(step));
  if (out.rows != static_cast<int64_t>(rows.size()))
    return Internal("the step has " + std::to_string(out.rows) + " rows of logits and " +
                    std::to_string(rows.size()) + " sampling rows");
  sampled->clear();
  if (out.rows == 0) return OkStatus();
  return backend_->Sample(out, rows, sampled);
}

StatusOr<Tensor> ModelRunner::ComputeLogits(const StepLayout& step) {
  const int64_t n = step.num_tokens();
  if (n == 0 || n > prefill_block_)
    return Internal("step of " + std::to_string(n) + " tokens; the workspace holds 1 to " +
                    std::to_string(prefill_block_));
  logit_rows_.clear();
  int64_t row = 0;
  for (const auto& seq : step.sequences) {
    row += seq.num_tokens;
    if (seq.needs_logits) logit_rows_.push_back(row - 1);
  }
  if (static_cast<int64_t>(logit_rows_.size()) > max_running_)
    return Internal("step asks for more logit rows than the workspace holds");

  const float eps = static_cast<float>(config_.rms_norm_eps);
  Backend& be = *backend_;
  BPT_RETURN_IF_ERROR(be.BeginStep(step, rope_));
  Tensor x = x_.Rows(0, n);            // [n, hidden]
  Tensor normed = normed_.Rows(0, n);  // [n, hidden]
  Tensor qkv = qkv_.Rows(0, n);        // [n, q_dim + 2 * kv_dim]
  Tensor attn = attn_.Rows(0, n);      // [n, q_dim]

  // Each residual add is fused with the norm that follows it: the next block's input norm,
  // and after the last layer the residual stream is complete.
  BPT_RETURN_IF_ERROR(be.Embed(embed_, x));
  BPT_RETURN_IF_ERROR(be.RmsNorm(x, layers_[0].input_norm, eps, normed));
  for (int li = 0; li < config_.num_layers; ++li) {
    const Layer& l = layers_[li];
    // Attention block: the step's keys join the cache before its queries read it.
    BPT_RETURN_IF_ERROR(be.Linear(normed, l.qkv, l.has_qkv_bias ? &l.qkv_bias : nullptr, qkv));
    BPT_RETURN_IF_ERROR(be.ApplyRope(qkv, attention_shape_));
    BPT_RETURN_IF_ERROR(be.AppendKv(li, qkv, attention_shape_));
    BPT_RETURN_IF_ERROR(be.Attention(li, qkv, attention_shape_, attn));
    BPT_RETURN_IF_ERROR(be.Linear(attn, l.o_proj, l.has_o_bias ? &l.o_bias : nullptr, normed));
    BPT_RETURN_IF_ERROR(be.AddRmsNorm(x, normed, l.post_norm, eps, normed));

    // Feed-forward block over sub-blocks; each sub-block's output overwrites its own input rows.
    for (int64_t r0 = 0; r0 < n; r0 += ffn_sub_block_) {
      const int64_t m = std::min<int64_t>(ffn_sub_block_, n - r0);
      Tensor gate_up = gate_up_.Rows(0, m);  // [m, 2 * intermediate]
      Tensor act = ffn_act_.Rows(0, m);      // [m, intermediate]
      BPT_RETURN_IF_ERROR(be.Linear(normed.Rows(r0, m), l.gate_up, nullptr, gate_up));
      BPT_RETURN_IF_ERROR(be.SwiGlu(gate_up, act));
      BPT_RETURN_IF_ERROR(be.Linear(act, l.down, nullptr, normed.Rows(r0, m)));
    }
    if (li + 1 < config_.num_layers) {
      BPT_RETURN_IF_ERROR(be.AddRmsNorm(x, normed, layers_[li + 1].input_norm, eps, normed));
    } else {
      BPT_RETURN_IF_ERROR(be.Add(x, normed));
    }
  }

  const int64_t k = static_cast<int64_t>(logit_rows_.size());
  if (k == 0) return logits_.Rows(0, 0);
  Tensor last = last_.Rows(0, k);                // [k, hidden]
  Tensor last_normed = last_normed_.Rows(0, k);  // [k, hidden]
  Tensor out = logits_.Rows(0, k);               // [k, vocab]
  BPT_RETURN_IF_ERROR(be.GatherRows(x, logit_rows_, last));
  BPT_RETURN_IF_ERROR(be.RmsNorm(last, final_norm_, eps, last_normed));
  BPT_RETURN_IF_ERROR(be.Linear(last_normed, lm_head_, nullptr, out));
  return out;
}

}  // namespace bpt
