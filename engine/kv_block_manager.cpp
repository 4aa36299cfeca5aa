#include "engine/kv_block_manager.h"

#include <algorithm>
#include <random>

namespace bpt {

KvBlockManager::KvBlockManager(int64_t num_blocks, int block_size)
    : num_blocks_(num_blocks), block_size_(block_size) {
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

Status KvBlockManager::Reserve(BlockTable* table, int64_t num_tokens) {
  const int64_t needed = BlocksForTokens(num_tokens) - static_cast<int64_t>(table->size());
  if (needed <= 0) return OkStatus();
  if (needed > num_free_blocks())
    return ResourceExhausted("KV cache is full: " + std::to_string(num_tokens) + " tokens need " +
                             std::to_string(needed) + " more blocks of " + std::to_string(block_size_) +
                             " tokens, " + std::to_string(num_free_blocks()) + " free (capacity " +
                             std::to_string(capacity_tokens()) + " tokens)");
  for (int64_t i = 0; i < needed; ++i) {
    table->push_back(free_.back());
    free_.pop_back();
  }
  return OkStatus();
}

void KvBlockManager::Release(BlockTable* table) {
  for (auto it = table->rbegin(); it != table->rend(); ++it) free_.push_back(*it);
  table->clear();
}

void KvBlockManager::ShuffleFreeBlocks(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::shuffle(free_.begin(), free_.end(), rng);
}

}  // namespace bpt
