// Blockwise causal attention on the CPU: each work item (a tile of one sequence's query tokens
// and the query heads of one KV head) walks the sequence's keys in tiles, read through the block
// table straight from the KV pool, keeping an online softmax (running max, running sum and an
// unnormalized output), so no score matrix larger than [kv tile x query rows] ever exists. The
// kernels (cpu_attention_kernels.inc) are compiled per instruction-set level; the level and the
// KV element type are fixed at construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu_attention_levels.h"
#include "engine_options.h"
#include "thread_pool.h"

namespace bpt {

// One layer's paged K and V: [num_blocks, block_size, num_kv_heads * head_dim] each, fp32 or
// bf16 (uint16_t) as the pool holds them.
struct PagedKvLayer {
  const void* k;
  const void* v;
  int block_size;
};

class CpuAttention {
 public:
  // isa resolved (not kAuto); kv_dtype kFloat32 or kBFloat16. bf16 keys and values are widened
  // to fp32 once per tile at every level. (Intel's AVX512-BF16 dot product retires a quarter as
  // often as an fp32 FMA, half the multiply-adds per second; AMD's would double them, which
  // these kernels do not use yet.)
  CpuAttention(const AttentionShape& shape, AttentionTiling tiling, CpuIsa isa, ElementType kv_dtype,
               int num_threads);

  // q: rows of the step, head h of token t at q[t * q_stride + h * head_dim];
  // out: [num_tokens, num_heads * head_dim] with row stride out_stride.
  // positions: [num_tokens], the position of each row.
  void Run(const float* q, int64_t q_stride, const PagedKvLayer& kv,
           const std::vector<SequenceSlice>& sequences, const int64_t* positions, float* out,
           int64_t out_stride, ThreadPool& pool);

  int64_t ScratchBytes() const;
  // e.g. cpu-avx512: the level whose kernels run.
  std::string kernels_name() const;

 private:
  struct Scratch {
    std::vector<float> queries_t, probs_t, out_t, tile_max, row_max, row_sum, correction, keys_f32, values_f32;
    std::vector<int32_t> causal_limit, window_limit;
    std::vector<const float*> key_rows, value_rows;
    AttentionScratchView view();
    int64_t bytes() const;
  };
  struct WorkItem {
    int64_t first_row;  // the step row of the tile's first token
    int32_t num_tokens;
    int32_t kv_head;
    const BlockTable* block_table;
    int64_t split_begin = 0;  // the item's share of the keys (AttentionTileArgs)
    int64_t split_end = INT64_MAX;
    int32_t partial = -1;     // its slot in partials_, or -1 when the item is not split
  };
  // An item split over its keys into `splits` items whose partials lie in consecutive slots.
  struct SplitItem {
    WorkItem item;  // item.partial: the first share's slot
    int64_t key_begin;
    int64_t keys_per_split;
    int32_t splits;
  };
  // Replaces items_ by shares of their keys when there are too few to keep every thread busy.
  void SplitItemsOverKeys(const int64_t* positions);
  void MergeSplits(float* out, int64_t out_stride) const;
  AttentionShape shape_;
  AttentionTiling tiling_;
  CpuIsa isa_;
  void (*kernel_)(const AttentionTileArgs&);
  std::vector<Scratch> scratch_;  // one per thread
  std::vector<WorkItem> items_;
  std::vector<SplitItem> split_items_;
  // [2 * kItemsPerThread * threads, min(query_tile, kMaxSplitTokens) * group, head_dim + 2]: each
  // share's AttentionTileArgs::partial
  std::vector<float> partials_;
  int64_t partial_slot_floats_;
};

}  // namespace bpt
