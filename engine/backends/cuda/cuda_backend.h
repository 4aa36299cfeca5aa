// The CUDA backend: bf16 weights, activations and KV cache with fp32 accumulation, GEMMs
// through cuBLAS, and the kernels in cuda_kernels.cuh. Every buffer is allocated at
// start-up (weights, workspace, the KV pool); a step only copies its metadata to the device.
// It is built as libbptserve_cuda.so, which the engine loads only when a CUDA device is asked
// for (backends/backend_factory.cpp; see base/shared_library.h for why it is not linked),
// through the entry points in cuda_plugin_abi.h.
// This header is plain C++: no CUDA header reaches the engine's other files or the server.
#pragma once

#include <memory>
#include <string>

#include "backend.h"
#include "engine_options.h"

namespace bpt {

// Visible CUDA devices; 0 when there is no driver or no device.
int CudaDeviceCount();

struct CudaMemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};
StatusOr<CudaMemoryInfo> CudaMemoryInfoNow(int device_ordinal);

class CudaBackend final : public Backend {
 public:
  static StatusOr<std::unique_ptr<CudaBackend>> Create(const ModelConfig& config, const EngineOptions& options);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  std::string dtype() const override { return "bfloat16"; }
  ElementType weight_dtype() const override { return ElementType::kBFloat16; }
  ElementType kv_dtype() const override { return ElementType::kBFloat16; }
  // "cudnn" or "cuda" (the own kernels); under auto, why cuDNN was not taken, in parentheses.
  std::string attention_kernels() const override;
  StatusOr<Tensor> UploadWeight(HostMatrix&& host) override;
  StatusOr<Tensor> AllocateActivation(int64_t rows, int64_t cols, Precision precision) override;
  Status AllocateKvPool(int num_layers, int64_t num_blocks, int block_size, int kv_dim) override;
  int64_t KvBytesPerToken(int num_layers, int kv_dim) const override;
  int64_t WeightBytes() const override;
  int64_t WorkspaceBytes() const override;
  int64_t FreeMemoryBytes() const override;
  int64_t KvBlockBytes() const override;
  Status ReadKvBlocks(std::span<const int32_t> blocks, uint8_t* host) const override;
  Status WriteKvBlocks(std::span<const int32_t> blocks, const uint8_t* host) override;
  Status WaitForSteps() override;
  void* AllocatePinnedHostMemory(size_t bytes) override;
  void FreePinnedHostMemory(void* p) override;

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
  bool SamplesOnDevice() const override;
  Status Sample(const Tensor& logits, const std::vector<SamplingRow>& rows, std::vector<SampledToken>* out) override;

  // Tests: fills a backend tensor from host fp32 values (converted to the tensor's type).
  Status CopyFromHost(const float* host, Tensor x);
  // Tests: fills the KV pool and the decode partials with NaN (all bits set), so that a kernel
  // reading a slot no step wrote fails its comparison instead of reading a stale value.
  Status PoisonForTests();
  // Tests and the GPU script: the cuDNN version and the library's path; empty without cuDNN.
  std::string cudnn_description() const;
  int64_t graphs_captured() const;
  int64_t graph_replays() const;

 private:
  struct Impl;
  explicit CudaBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bpt
