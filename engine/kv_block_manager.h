// Bookkeeping of the paged KV cache: which fixed-size blocks of the pool belong to which
// sequence. Plain code with no backend, so the scheduler and its tests use it directly; the
// backend owns the storage, [num_layers][num_blocks][block_size][num_kv_heads][head_dim] for K
// and the same for V, and reads it through each sequence's block table.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/status.h"

namespace bpt {

// Entry i holds the pool block that stores positions [i * block_size, (i + 1) * block_size).
using BlockTable = std::vector<int32_t>;

class KvBlockManager {
 public:
  KvBlockManager(int64_t num_blocks, int block_size);

  int block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t capacity_tokens() const { return num_blocks_ * block_size_; }
  int64_t BlocksForTokens(int64_t num_tokens) const {
    return (num_tokens + block_size_ - 1) / block_size_;
  }

  // Grows `table` to cover `num_tokens` positions. On ResourceExhausted the table is unchanged.
  Status Reserve(BlockTable* table, int64_t num_tokens);
  // Returns every block of `table` to the pool and clears it.
  void Release(BlockTable* table);
  // Permutes the free list, so tests prove nothing relies on blocks being contiguous.
  void ShuffleFreeBlocks(uint64_t seed);

 private:
  int64_t num_blocks_;
  int block_size_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
};

}  // namespace bpt
