// How one forward step maps onto cuDNN's SDPA (cudnn_attention.cpp): per-sequence query and key
// counts, where each sequence's queries and outputs start, and its page table. cuDNN takes a
// fixed batch (max_running) with padded page tables of one width; the unused batch entries are
// sequences of zero queries and zero keys. Plain host code, tested without a GPU
// (tests/cudnn_attention_plan_test.cpp); cuda_backend.cu writes the plan into pinned staging
// buffers and copies it to the device before the step's first layer.
#pragma once

#include <cstdint>

#include "backend.h"

namespace bpt::cuda {

// The shapes every cuDNN graph of a backend shares (the graphs differ only in max_queries).
struct CudnnAttentionShape {
  int batch;                 // max_running: the graph's B, padded with empty sequences
  int num_heads;
  int num_kv_heads;
  int head_dim;
  int block_size;            // tokens per KV block: cuDNN's page size
  int64_t num_kv_blocks;     // of the pool
  int64_t table_width;       // page-table entries per sequence: ceil(max_model_len / block_size)
  int64_t prefill_block;     // query rows of the step: the mixed graph's max queries per sequence
  int64_t qkv_stride;        // elements between a token's rows in the qkv activation
  int64_t out_stride;        // elements between a token's rows in the attention output
  int64_t sliding_window;    // 0: full causal
};

// Where the plan goes: arrays sized by the shape.
struct CudnnAttentionBuffers {
  int32_t* seq_len_q;      // [batch]
  int32_t* seq_len_kv;     // [batch]
  int32_t* q_offsets;      // [batch + 1] elements of qkv to each sequence's first query row
  int32_t* out_offsets;    // [batch + 1] elements of out to each sequence's first output row
  int32_t* page_table;     // [batch, table_width] KV block ids, cuDNN's page table (K and V alike)
};

struct CudnnAttentionPlan {
  // Every slice one token asking for logits: the decode graph (one query per sequence, rows in
  // order), which the decode CUDA graphs capture.
  bool decode_only = false;
  int num_sequences = 0;
  // The page-table rectangle that changed: num_sequences rows of used_width entries each (the
  // rest of a row is never read, since a sequence's keys end inside its used entries).
  int64_t used_width = 0;
};

// Bounds the offsets cuDNN reads as int32: a step's qkv rows must fit below 2^31 elements.
Status CheckCudnnAttentionShape(const CudnnAttentionShape& shape);

// Errors are Internal: the scheduler never makes such a step.
StatusOr<CudnnAttentionPlan> PlanCudnnAttention(const StepLayout& step, const CudnnAttentionShape& shape,
                                                const CudnnAttentionBuffers& out);

}  // namespace bpt::cuda
