// Attention through cuDNN's SDPA (the cuDNN frontend's graph API): bf16 Q/K/V with fp32
// softmax, bottom-right causal and sliding-window masks, GQA by head counts (K/V never copied),
// K/V read in place from the paged pool through cuDNN's page tables, ragged query offsets so
// one call serves a step's mixed batch. Two graphs per backend, built once at start-up: the mixed
// one (up to prefill_block queries per sequence) and the decode one (one query per sequence, the
// shape the decode CUDA graphs capture); every step and layer reuses them with new pointers.
//
// libcudnn.so.9 is not linked: it is dlopen()ed here (the frontend's dynamic loading), so the
// plugin loads on a machine without cuDNN and `--attention-backend auto` falls back to the own
// kernels. cuDNN itself comes from the GPU host's installation (PyTorch's wheel there).
// This header is plain C++; only cudnn_attention.cpp includes cuDNN's headers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "cudnn_attention_plan.h"
#include "status.h"

namespace bpt::cuda {

// The plan's arrays on the device, as CudnnAttention::Run reads them.
using CudnnAttentionDeviceBuffers = CudnnAttentionBuffers;

class CudnnAttention {
 public:
  // Loads cuDNN and builds both graphs on `stream`'s device. An error says why (cuDNN absent or
  // too old, or this shape unsupported on this GPU); under auto the backend then uses its own.
  static StatusOr<std::unique_ptr<CudnnAttention>> Create(const CudnnAttentionShape& shape, cudaStream_t stream);
  ~CudnnAttention();

  // The larger of the two graphs' workspaces; the caller allocates it once.
  int64_t workspace_bytes() const;
  // e.g. "cuDNN 9.13.0 from /usr/lib/.../libcudnn.so.9": the load summary and the GPU tests print it.
  const std::string& description() const;

  // One layer's attention over the step planned into `plan_buffers` (device copies).
  // qkv: [num_tokens, qkv_stride] q heads from column 0; k_cache, v_cache: the layer's pool,
  // [num_kv_blocks, block_size, num_kv_heads, head_dim]; out: [num_tokens, out_stride];
  // workspace: workspace_bytes() on the device.
  Status Run(bool decode_only, const __nv_bfloat16* qkv, const __nv_bfloat16* k_cache, const __nv_bfloat16* v_cache,
             const CudnnAttentionDeviceBuffers& plan_buffers, __nv_bfloat16* out, void* workspace);

 private:
  struct Graphs;
  explicit CudnnAttention(std::unique_ptr<Graphs> graphs);
  std::unique_ptr<Graphs> graphs_;
};

}  // namespace bpt::cuda
