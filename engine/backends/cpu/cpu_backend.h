// The CPU backend: fp32 activations; weights and the KV cache in fp32 or bf16; kernels for the
// instruction-set level chosen at load (cpu_isa.h), run on a thread pool.
#pragma once

#include <memory>
#include <vector>

#include "backend.h"
#include "cpu_attention.h"
#include "cpu_elementwise.h"
#include "cpu_isa.h"
#include "cpu_matmul.h"
#include "thread_pool.h"

namespace bpt {

class CpuBackend final : public Backend {
 public:
  // weight_dtype and kv_dtype resolved (kFloat32 or kBFloat16); options.isa kAuto or a level
  // this CPU supports (ResolveCpuIsa).
  CpuBackend(const ModelConfig& config, const CpuOptions& options, ElementType weight_dtype, ElementType kv_dtype);
  ~CpuBackend() override;

  std::string name() const override { return "cpu"; }
  std::string dtype() const override { return "float32"; }
  ElementType weight_dtype() const override { return weight_dtype_; }
  ElementType kv_dtype() const override { return kv_dtype_; }
  std::string attention_kernels() const override;
  StatusOr<Tensor> UploadWeight(HostMatrix&& host) override;
  StatusOr<Tensor> AllocateActivation(int64_t rows, int64_t cols, Precision precision) override;
  Status AllocateKvPool(int num_layers, int64_t num_blocks, int block_size, int kv_dim) override;
  int64_t KvBytesPerToken(int num_layers, int kv_dim) const override;
  int64_t KvBlockBytes() const override { return 2 * kv_num_layers_ * kv_block_slab_bytes_; }
  Status ReadKvBlocks(std::span<const int32_t> blocks, uint8_t* host) const override;
  Status WriteKvBlocks(std::span<const int32_t> blocks, const uint8_t* host) override;
  int64_t WeightBytes() const override { return weight_bytes_ + matmul_.WeightBytes(); }
  int64_t WorkspaceBytes() const override;
  int64_t FreeMemoryBytes() const override;

  Status BeginStep(const StepLayout& step, const Rope& rope) override;
  Status Embed(const Tensor& table, Tensor out) override;
  Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override;
  Status Linear(const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor out) override;
  Status Add(Tensor x, const Tensor& y) override;
  Status AddRmsNorm(Tensor x, const Tensor& y, const Tensor& weight, float eps, Tensor out) override;
  Status ApplyRope(Tensor qkv, const AttentionShape& shape) override;
  Status AppendKv(int layer, const Tensor& qkv, const AttentionShape& shape) override;
  Status Attention(int layer, const Tensor& qkv, const AttentionShape& shape, Tensor out) override;
  Status SwiGlu(const Tensor& gate_up, Tensor out) override;
  Status GatherRows(const Tensor& x, const std::vector<int64_t>& rows, Tensor out) override;
  Status CopyToHost(const Tensor& x, float* host) override;

 private:
  const CpuIsa isa_;
  const ElementType weight_dtype_;
  const ElementType kv_dtype_;
  ThreadPool pool_;
  CpuAttention attention_;
  std::vector<std::unique_ptr<float[]>> allocations_;
  CpuMatmul matmul_;  // holds the weight matrices, packed
  CpuElementwise elementwise_;
  std::vector<std::vector<float>> weights_;  // the vectors ([1, n]: norms, biases), fp32 row-major
  int64_t weight_bytes_ = 0;  // of weights_
  int64_t workspace_bytes_ = 0;

  // The KV pool is mapped lazily: pages become resident as blocks are first written.
  // K: [num_layers, num_blocks, block_size, kv_dim], then V likewise; fp32 or bf16 (kv_dtype_).
  char* kv_pool_ = nullptr;
  int kv_num_layers_ = 0;
  int64_t kv_num_blocks_ = 0;
  int64_t kv_block_slab_bytes_ = 0;  // one block of one layer's K (or V): block_size * kv_dim elements
  size_t kv_pool_bytes_ = 0;
  int64_t kv_layer_stride_ = 0;  // bytes per layer of K (or V)
  int64_t kv_v_offset_ = 0;      // bytes from K's start to V's
  int kv_block_size_ = 0;

  // The current step, set by BeginStep.
  const StepLayout* step_ = nullptr;
  std::vector<int64_t> positions_;  // [num_tokens]
  std::vector<int64_t> slots_;      // [num_tokens] block * block_size + offset
  std::vector<float> rope_cos_;     // [num_tokens, head_dim / 2]
  std::vector<float> rope_sin_;     // [num_tokens, head_dim / 2]
};

}  // namespace bpt
