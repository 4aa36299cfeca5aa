// Host launchers of the CUDA backend's kernels. Each checks its arguments, launches on the
// given stream and returns the launch error as a Status; none synchronizes. Shapes are in
// elements; every matrix is row-major and bf16 unless its comment says otherwise.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_attention_plan.h"
#include "status.h"

namespace bpt::cuda {

using bf16 = __nv_bfloat16;

// Turns a CUDA error into the Status that fails the request.
Status CudaStatus(cudaError_t error, const char* what);
#define BPT_CUDA_RETURN_IF_ERROR(expr)                                      \
  do {                                                                      \
    const cudaError_t bpt_cuda_error_ = (expr);                             \
    if (bpt_cuda_error_ != cudaSuccess) return ::bpt::cuda::CudaStatus(bpt_cuda_error_, #expr); \
  } while (0)

// ---- elementwise (engine/backends/cuda/cuda_elementwise.cu) ----

// out[t] = table[ids[t]].  table: [vocab, hidden]; ids: [n] int32; out: [n, hidden]
Status LaunchEmbed(const bf16* table, int64_t vocab, const int32_t* ids, int64_t n, int64_t hidden, bf16* out,
                   cudaStream_t stream);
// out = x / rms(x) * weight.  x, out: [rows, hidden]; weight: [hidden]
Status LaunchRmsNorm(const bf16* x, const bf16* weight, int64_t rows, int64_t hidden, float eps, bf16* out,
                     cudaStream_t stream);
// x += y, then out = x / rms(x) * weight.  x, y, out: [rows, hidden] (out may alias y)
Status LaunchAddRmsNorm(bf16* x, const bf16* y, const bf16* weight, int64_t rows, int64_t hidden, float eps,
                        bf16* out, cudaStream_t stream);
// x += y.  x, y: [count]
Status LaunchAdd(bf16* x, const bf16* y, int64_t count, cudaStream_t stream);
// out[r, c] += bias[c].  out: [rows, cols]
Status LaunchAddBias(bf16* out, const bf16* bias, int64_t rows, int64_t cols, cudaStream_t stream);
// Rotates the q and k heads of each row (HF rotate_half layout).
// qkv: [n, qkv_stride], q heads then k heads from column 0; cos, sin: [n, head_dim / 2] fp32
Status LaunchRope(bf16* qkv, int64_t n, int64_t qkv_stride, int num_heads, int num_kv_heads, int head_dim,
                  const float* cos, const float* sin, cudaStream_t stream);
// k_cache[slot[t]] = k part of row t, v_cache likewise.
// qkv: [n, qkv_stride] with k at column k_col and v at k_col + kv_dim; slots: [n] int64;
// k_cache, v_cache: [num_slots, kv_dim]
Status LaunchAppendKv(const bf16* qkv, int64_t n, int64_t qkv_stride, int64_t k_col, int kv_dim,
                      const int64_t* slots, bf16* k_cache, bf16* v_cache, cudaStream_t stream);
// out = silu(gate) * up.  gate_up: [rows, 2 * ffn]; out: [rows, ffn]
Status LaunchSwiGlu(const bf16* gate_up, int64_t rows, int64_t ffn, bf16* out, cudaStream_t stream);
// out[i] = x[rows[i]].  x: [*, cols]; rows: [count] int64; out: [count, cols]
Status LaunchGatherRows(const bf16* x, int64_t cols, const int64_t* rows, int64_t count, bf16* out,
                        cudaStream_t stream);

// ---- attention (engine/backends/cuda/cuda_attention.cu) ----

struct AttentionArgs {
  const bf16* qkv;      // [num_tokens, qkv_stride]: q heads, k heads, v heads
  int64_t qkv_stride;
  const bf16* k_cache;  // [num_slots, num_kv_heads * head_dim] (this layer)
  const bf16* v_cache;  // [num_slots, num_kv_heads * head_dim]
  const int32_t* block_tables;  // concatenated per sequence: block ids
  int block_size;
  bf16* out;            // [num_tokens, out_stride]: head h at column h * head_dim
  int64_t out_stride;
  int num_heads;
  int num_kv_heads;
  int head_dim;
  int64_t sliding_window;  // 0: full causal
  float scale;             // softmax scale, 1 / sqrt(head_dim)
};

bool AttentionHeadDimSupported(int head_dim);
// Raises the kernels' shared-memory limits; once per process, before any launch (and never
// during a graph capture).
Status ConfigureAttentionKernels();

// Causal attention of the prefill tiles: tiled over keys with an online softmax, K and V read
// once per tile for all heads of the group. sequences, tiles: device arrays.
Status LaunchPrefillAttention(const AttentionArgs& args, const AttentionSequence* sequences, const PrefillTile* tiles,
                              int num_tiles, cudaStream_t stream);

// Flash-decoding: every split writes an unnormalized partial (acc, max, sum) per query head,
// then a combine pass normalizes across splits into args.out.
// partial_acc: [num_items, num_heads, max_splits, head_dim] fp32; partial_max, partial_sum:
// [num_items, num_heads, max_splits] fp32 (log2 domain for the max).
Status LaunchDecodeAttention(const AttentionArgs& args, const AttentionSequence* sequences, const DecodeItem* items,
                             int num_items, int max_splits_in_step, int max_splits,
                             float* partial_acc, float* partial_max, float* partial_sum, cudaStream_t stream);

// ---- sampling (engine/backends/cuda/cuda_sampling.cu) ----

// One row's sampling parameters, as engine/sampling/sampler.cpp applies them.
struct SampleRowParams {
  float temperature;  // 0: greedy
  int32_t top_k;      // 0: off
  float top_p;        // 1: off
  float min_p;        // 0: off
  float repetition_penalty;
  float presence_penalty;
  float frequency_penalty;
  float uniform;      // the draw in [0, 1), from the request's generator on the host
  int32_t top_logprobs;
  int32_t penalty_begin;  // the row's entries in the penalty array
  int32_t penalty_count;
};

// A token that a penalty applies to: in the prompt (repetition penalty) and/or generated.
struct PenaltyEntry {
  int32_t token;
  int32_t count;      // times generated
  int32_t in_prompt;
};

constexpr int kMaxTopLogprobs = 20;

struct SampleResult {
  int32_t token;
  float logprob;  // of the unmodified distribution
  int32_t top_ids[kMaxTopLogprobs];
  float top_logprobs[kMaxTopLogprobs];
};

// One block per row: log-softmax of the raw logits (logprobs, top logprobs), penalties into
// scratch, then greedy, or temperature with top-k, top-p and min-p as thresholds on the
// penalized logits and the draw by prefix sum in token order.
// logits, scratch: [rows, vocab] fp32; params, results: [rows]
Status LaunchSample(const float* logits, int rows, int vocab, const SampleRowParams* params,
                    const PenaltyEntry* penalties, float* scratch, SampleResult* results, cudaStream_t stream);

}  // namespace bpt::cuda
