// Blockwise causal attention on the CPU: each query tile walks the sequence's keys in tiles,
// read through the block table, keeping an online softmax (running max, running sum and an
// unnormalized output) so no score matrix larger than [query tile x KV tile] ever exists.
#pragma once

#include <cstdint>
#include <vector>

#include "backend.h"
#include "engine_options.h"
#include "thread_pool.h"

namespace bpt {

// One layer's paged K and V: [num_blocks, block_size, num_kv_heads * head_dim] each.
struct PagedKvLayer {
  const float* k;
  const float* v;
  int block_size;
};

class CpuAttention {
 public:
  CpuAttention(const AttentionShape& shape, AttentionTiling tiling, int num_threads);

  // q: rows of the step, head h of token t at q[t * q_stride + h * head_dim];
  // out: [num_tokens, num_heads * head_dim] with row stride out_stride.
  // positions: [num_tokens], the position of each row.
  void Run(const float* q, int64_t q_stride, const PagedKvLayer& kv,
           const std::vector<SequenceSlice>& sequences, const int64_t* positions, float* out,
           int64_t out_stride, ThreadPool& pool);

  int64_t ScratchBytes() const;

 private:
  struct Scratch {
    std::vector<float> queries;      // [query_tile * group, head_dim], pre-scaled by 1/sqrt(head_dim)
    std::vector<float> keys_t;       // [head_dim, kv_tile]: the tile's keys, transposed
    std::vector<const float*> values;  // [kv_tile]: the tile's value rows in the pool
    std::vector<float> scores;       // [query_tile * group, kv_tile]
    std::vector<float> acc;          // [query_tile * group, head_dim]
    std::vector<float> max;          // [query_tile * group]
    std::vector<float> sum;          // [query_tile * group]
  };
  struct WorkItem {
    int64_t first_row;  // the step row of the tile's first token
    int32_t num_tokens;
    int32_t kv_head;
    const BlockTable* block_table;
  };

  void RunTile(const WorkItem& item, const float* q, int64_t q_stride, const PagedKvLayer& kv,
               const int64_t* positions, float* out, int64_t out_stride, Scratch& s) const;

  AttentionShape shape_;
  AttentionTiling tiling_;
  std::vector<Scratch> scratch_;  // one per thread
  std::vector<WorkItem> items_;
};

}  // namespace bpt
