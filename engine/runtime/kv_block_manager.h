// Bookkeeping of the paged KV cache: which fixed-size blocks of the pool belong to which
// sequence, and which full blocks hold a known run of tokens (the prefix cache). Plain code
// with no backend, so the scheduler and its tests use it directly; the backend owns the
// storage, [num_layers][num_blocks][block_size][num_kv_heads][head_dim] for K and the same for
// V, and reads it through each sequence's block table.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "status.h"

namespace bpt {

// Entry i holds the pool block that stores positions [i * block_size, (i + 1) * block_size).
using BlockTable = std::vector<int32_t>;

// The root of the pool's hash chain for a request's cache salt (MatchPrefix, CachePrefix); no
// salt gives 0.
uint64_t PoolSaltSeed(const std::string& salt);

class KvBlockManager {
 public:
  KvBlockManager(int64_t num_blocks, int block_size);

  int block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  // Blocks a sequence can get now: never used, or cached but held by no sequence (evictable).
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size() + evictable_.size()); }
  int64_t capacity_tokens() const { return num_blocks_ * block_size_; }
  int64_t BlocksForTokens(int64_t num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // Grows `table` to cover `num_tokens` positions, evicting the least recently used cached
  // blocks when no block is free. On ResourceExhausted the table is unchanged.
  Status Reserve(BlockTable* table, int64_t num_tokens);
  // Drops the table's references and clears it. Blocks no table holds become free, or, if they
  // are in the prefix cache, evictable (most recently used last).
  void Release(BlockTable* table);
  // Releases entries [keep, size) of the table and drops them from it.
  void ReleaseTail(BlockTable* table, size_t keep);
  // One more reference to each block of `table` (the KV tiers hold blocks while they copy them
  // out); Release of a copy of the table gives them back.
  void Retain(const BlockTable& table);

  // Prefix cache. Appends to the empty `table` the cached blocks that hold the longest run of
  // full blocks starting `tokens`, leaving at least one token to compute; returns how many
  // tokens they hold. `salt` roots the hash chain: blocks published under one salt are never
  // matched under another (one tenant's documents are not another's, not even by timing).
  int64_t MatchPrefix(std::span<const int32_t> tokens, BlockTable* table, uint64_t salt = 0);
  // Publishes the full blocks of `table` that hold tokens[0, num_tokens) for later requests.
  void CachePrefix(std::span<const int32_t> tokens, int64_t num_tokens, const BlockTable& table, uint64_t salt = 0);
  int64_t num_cached_blocks() const { return static_cast<int64_t>(block_key_.size()); }
  // Forgets every cached block no table holds: they become free (vLLM's reset_prefix_cache).
  void ResetPrefixCache();

  // Permutes the free list, so tests prove nothing relies on blocks being contiguous.
  void ShuffleFreeBlocks(uint64_t seed);

 private:
  // A cached block: the hash of every token up to its end, and its own tokens to verify a hit.
  struct CachedBlock {
    uint64_t prefix_hash;
    std::vector<int32_t> tokens;
  };
  uint64_t ChainHash(uint64_t parent, std::span<const int32_t> block_tokens) const;
  int32_t TakeBlock();  // a free block, or the least recently used evictable one
  void AddReference(int32_t block);  // an evictable block referenced again is no longer evictable
  void DropReference(int32_t block);
  void Uncache(int32_t block);
  const CachedBlock& CachedBlockOf(int32_t block) const;  // a block by_hash_ names

  int64_t num_blocks_;
  int block_size_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
  std::vector<int32_t> refs_;  // [num_blocks] tables holding each block
  std::unordered_multimap<uint64_t, int32_t> by_hash_;     // prefix hash -> cached block
  std::unordered_map<int32_t, CachedBlock> block_key_;     // cached block -> what it holds
  std::list<int32_t> evictable_;                           // cached, unreferenced; LRU first
  std::unordered_map<int32_t, std::list<int32_t>::iterator> evictable_pos_;
};

}  // namespace bpt
