// The operations a compute backend provides to the model runner. The runner owns the BPT block
// loop (engine/runner/model_runner.cpp) and is the same for every backend; a backend owns its memory
// (weights, workspace tensors, the KV pool) and executes one op at a time on it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine_options.h"
#include "kv_block_manager.h"
#include "model_config.h"
#include "model_weights.h"
#include "sampler.h"
#include "status.h"

namespace bpt {

// A row-major matrix in backend memory; the element type is the backend's (fp32 on the CPU,
// bf16 on CUDA) unless it was allocated as Precision::kFloat32.
struct Tensor {
  void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int elem_bytes = 4;

  // Rows [begin, begin + count) as a view.
  Tensor Rows(int64_t begin, int64_t count) const {
    return {static_cast<char*>(data) + begin * cols * elem_bytes, count, cols, elem_bytes};
  }
};

// One sequence's slice of a forward step: its tokens are consecutive rows of the step.
struct SequenceSlice {
  int64_t start_position = 0;   // position of the slice's first token
  int32_t num_tokens = 0;
  const BlockTable* block_table = nullptr;  // covers positions [0, start_position + num_tokens)
  bool needs_logits = false;    // logits of the slice's last token
};

// Everything a forward step needs to know about its tokens, in host memory.
struct StepLayout {
  std::vector<int32_t> token_ids;       // [num_tokens]
  std::vector<SequenceSlice> sequences;
  int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }
};

struct AttentionShape {
  int num_heads;
  int num_kv_heads;
  int head_dim;
  int64_t sliding_window;  // 0: full causal
};

// Every backend op checks its tensors with this before touching them.
inline Status CheckShape(const char* op, const Tensor& t, int64_t rows, int64_t cols) {
  if (t.rows != rows || t.cols != cols)
    return Internal(std::string(op) + ": tensor is [" + std::to_string(t.rows) + ", " + std::to_string(t.cols) +
                    "], expected [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  return OkStatus();
}

// Activations use the backend's compute type; logits that go to the host are kept in fp32.
enum class Precision { kCompute, kFloat32 };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // The element type activations are computed in, as GetModelInfo names it (float32, bfloat16).
  virtual std::string dtype() const = 0;
  // How the weights and the KV cache are stored, resolved: kFloat32 or kBFloat16, never kAuto.
  virtual ElementType weight_dtype() const = 0;
  virtual ElementType kv_dtype() const = 0;
  // The attention kernels in use, as GetModelInfo and the load summary name them
  // (e.g. cpu-avx512, cuda).
  virtual std::string attention_kernels() const = 0;

  // Takes a host fp32 matrix into backend memory that lives as long as the backend; the host
  // copy is consumed, so loading never holds two full copies of the weights.
  virtual StatusOr<Tensor> UploadWeight(HostMatrix&& host) = 0;
  // Backend memory for activations, allocated once at start-up.
  virtual StatusOr<Tensor> AllocateActivation(int64_t rows, int64_t cols, Precision precision) = 0;
  // The KV pool: num_layers x num_blocks x block_size x kv_dim for K, and again for V.
  virtual Status AllocateKvPool(int num_layers, int64_t num_blocks, int block_size, int kv_dim) = 0;
  virtual int64_t KvBytesPerToken(int num_layers, int kv_dim) const = 0;
  // Bytes of weights held, in the backend's own format.
  virtual int64_t WeightBytes() const = 0;
  // Bytes of activations and scratch allocated so far (weights and KV pool excluded).
  virtual int64_t WorkspaceBytes() const = 0;
  // Memory the KV pool could take now, once the weights and workspace are allocated.
  virtual int64_t FreeMemoryBytes() const = 0;

  // Whole KV blocks to and from host memory, for the tiers below the pool. host:
  // [num_layers][2 (K, V)][blocks.size()][block_size][kv_dim] in the KV dtype (KvBlockBytes()
  // per block). Called from the tier threads while steps run: only on blocks no step touches
  // (loading blocks belong to a waiting sequence; stored ones are held). A block of -1 in a write
  // is left as it is. Both may run at once (a load and a store). Backends without them return
  // Unimplemented, and the engine refuses tiers on them.
  virtual int64_t KvBlockBytes() const { return 0; }
  virtual Status ReadKvBlocks(std::span<const int32_t> blocks, uint8_t* host) const {
    return Unimplemented(name() + " backend cannot copy KV blocks to host memory yet");
  }
  virtual Status WriteKvBlocks(std::span<const int32_t> blocks, const uint8_t* host) {
    return Unimplemented(name() + " backend cannot copy KV blocks from host memory yet");
  }
  // Waits until the steps launched so far have written their KV, so that ReadKvBlocks, on
  // another thread, reads it whole. Backends whose steps end on return need not wait.
  virtual Status WaitForSteps() { return OkStatus(); }
  // Page-locked host memory (the host tier's), which the copies above move by DMA with no
  // staging copy; nullptr where the backend has none (its pool is host memory) or cannot.
  virtual void* AllocatePinnedHostMemory(size_t bytes) { return nullptr; }
  virtual void FreePinnedHostMemory(void* p) {}

  // Makes the step's token ids, positions, KV slots and RoPE angles current for the ops below.
  virtual Status BeginStep(const StepLayout& step, const class Rope& rope) = 0;

  // out[t] = table[token_ids[t]].  out: [num_tokens, hidden]
  virtual Status Embed(const Tensor& table, Tensor out) = 0;
  // out = x / rms(x) * weight, row by row.  x, out: [n, hidden]; weight: [1, hidden]
  virtual Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor out) = 0;
  // out = x @ weight^T (+ bias).  x: [n, in]; weight: [out, in]; bias: [1, out] or null
  virtual Status Linear(const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor out) = 0;
  // x += y.  x, y: [n, cols]
  virtual Status Add(Tensor x, const Tensor& y) = 0;
  // x += y, then out = x / rms(x) * weight: the residual add and the next norm in one pass.
  // x, y, out: [n, hidden] (out may be y); weight: [1, hidden]
  virtual Status AddRmsNorm(Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out) = 0;
  // Rotates the q and k parts of qkv in place at the step's positions.
  // qkv: [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim]
  virtual Status ApplyRope(Tensor qkv, const AttentionShape& shape) = 0;
  // Writes the k and v parts of each row into its KV slot of `layer`.
  virtual Status AppendKv(int layer, const Tensor& qkv, const AttentionShape& shape) = 0;
  // Causal attention of each sequence's queries over its cached keys and values.
  // qkv: [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim]; out: [num_tokens, num_heads * head_dim]
  virtual Status Attention(int layer, const Tensor& qkv, const AttentionShape& shape, Tensor out) = 0;
  // out = silu(gate) * up.  gate_up: [n, 2 * ffn] (gate columns first); out: [n, ffn]
  virtual Status SwiGlu(const Tensor& gate_up, Tensor out) = 0;
  // out[i] = x[rows[i]].  x: [n, cols]; out: [rows.size(), cols]
  virtual Status GatherRows(const Tensor& x, const std::vector<int64_t>& rows, Tensor out) = 0;
  // host: [x.rows, x.cols] fp32; waits for the step's work to finish.
  virtual Status CopyToHost(const Tensor& x, float* host) = 0;

  // Sampling where the logits are, so that only the chosen ids (with their logprobs) reach the
  // host. Backends that do not override it have the runner copy the logits out instead.
  virtual bool SamplesOnDevice() const { return false; }
  // Row i of logits sampled as Sampler::Sample would with rows[i]; waits for the step's work.
  // logits: [rows.size(), vocab] fp32
  virtual Status Sample(const Tensor& logits, const std::vector<SamplingRow>& rows, std::vector<SampledToken>* out) {
    return Unimplemented(name() + " backend samples on the host");
  }
};

}  // namespace bpt
