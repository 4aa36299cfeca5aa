#include "kv_block_manager.h"

#include <algorithm>
#include <random>
#include <string>

#include "check.h"

namespace bpt {

KvBlockManager::KvBlockManager(int64_t num_blocks, int block_size)
    : num_blocks_(num_blocks), block_size_(block_size), refs_(num_blocks, 0) {
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

uint64_t KvBlockManager::ChainHash(uint64_t parent, std::span<const int32_t> block_tokens) const {
  uint64_t h = parent ^ 0x9e3779b97f4a7c15ULL;
  for (int32_t t : block_tokens) {
    h ^= static_cast<uint32_t>(t);
    h *= 0x100000001b3ULL;
    h ^= h >> 29;
  }
  return h;
}

const KvBlockManager::CachedBlock& KvBlockManager::CachedBlockOf(int32_t block) const {
  const auto cached = block_key_.find(block);
  BPT_CHECK(cached != block_key_.end(),
            "the prefix index names block " + std::to_string(block) + ", which is not cached");
  return cached->second;
}

void KvBlockManager::Uncache(int32_t block) {
  auto key = block_key_.find(block);
  if (key == block_key_.end()) return;
  auto range = by_hash_.equal_range(key->second.prefix_hash);
  for (auto it = range.first; it != range.second; ++it)
    if (it->second == block) {
      by_hash_.erase(it);
      break;
    }
  block_key_.erase(key);
}

int32_t KvBlockManager::TakeBlock() {
  if (!free_.empty()) {
    const int32_t b = free_.back();
    free_.pop_back();
    return b;
  }
  BPT_CHECK(!evictable_.empty(), "no free or evictable block is left, though Reserve counted enough");
  const int32_t b = evictable_.front();
  evictable_.pop_front();
  evictable_pos_.erase(b);
  Uncache(b);
  return b;
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
    const int32_t b = TakeBlock();
    refs_[b] = 1;
    table->push_back(b);
  }
  return OkStatus();
}

void KvBlockManager::DropReference(int32_t b) {
  BPT_CHECK(refs_[b] > 0, "block " + std::to_string(b) + " released more often than referenced");
  if (--refs_[b] > 0) return;
  if (block_key_.count(b) != 0) {
    evictable_pos_[b] = evictable_.insert(evictable_.end(), b);
  } else {
    free_.push_back(b);
  }
}

void KvBlockManager::AddReference(int32_t b) {
  if (refs_[b]++ != 0) return;
  const auto pos = evictable_pos_.find(b);
  BPT_CHECK(pos != evictable_pos_.end(),
            "block " + std::to_string(b) + " had no references but is not on the evictable list");
  evictable_.erase(pos->second);
  evictable_pos_.erase(pos);
}

void KvBlockManager::Release(BlockTable* table) { ReleaseTail(table, 0); }

void KvBlockManager::ReleaseTail(BlockTable* table, size_t keep) {
  // Later blocks first: an evicted prefix then loses its tail before its head.
  for (size_t i = table->size(); i > keep; --i) DropReference((*table)[i - 1]);
  if (table->size() > keep) table->resize(keep);
}

void KvBlockManager::Retain(const BlockTable& table) {
  for (int32_t b : table) AddReference(b);
}

// FNV-1a: the salt's root for the pool's 64-bit chain; no salt keeps the root 0.
uint64_t PoolSaltSeed(const std::string& salt) {
  if (salt.empty()) return 0;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : salt) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h | 1;
}

int64_t KvBlockManager::MatchPrefix(std::span<const int32_t> tokens, BlockTable* table, uint64_t salt) {
  const int64_t max_blocks = (static_cast<int64_t>(tokens.size()) - 1) / block_size_;
  uint64_t hash = salt;
  for (int64_t i = 0; i < max_blocks; ++i) {
    const auto block_tokens = tokens.subspan(i * block_size_, block_size_);
    hash = ChainHash(hash, block_tokens);
    int32_t found = -1;
    auto range = by_hash_.equal_range(hash);
    for (auto it = range.first; it != range.second && found < 0; ++it) {
      const CachedBlock& c = CachedBlockOf(it->second);
      if (std::equal(c.tokens.begin(), c.tokens.end(), block_tokens.begin(), block_tokens.end())) found = it->second;
    }
    if (found < 0) break;
    AddReference(found);
    table->push_back(found);
  }
  return static_cast<int64_t>(table->size()) * block_size_;
}

void KvBlockManager::CachePrefix(std::span<const int32_t> tokens, int64_t num_tokens, const BlockTable& table,
                                 uint64_t salt) {
  const int64_t full = std::min<int64_t>(num_tokens / block_size_, static_cast<int64_t>(table.size()));
  uint64_t hash = salt;
  for (int64_t i = 0; i < full; ++i) {
    const auto block_tokens = tokens.subspan(i * block_size_, block_size_);
    hash = ChainHash(hash, block_tokens);
    const int32_t b = table[i];
    if (block_key_.count(b) != 0) continue;  // already cached (it was matched, or cached before)
    bool duplicate = false;  // the same run cached in another block: keep the first
    auto range = by_hash_.equal_range(hash);
    for (auto it = range.first; it != range.second && !duplicate; ++it) {
      const CachedBlock& c = CachedBlockOf(it->second);
      duplicate = std::equal(c.tokens.begin(), c.tokens.end(), block_tokens.begin(), block_tokens.end());
    }
    if (duplicate) continue;
    block_key_.emplace(b, CachedBlock{hash, std::vector<int32_t>(block_tokens.begin(), block_tokens.end())});
    by_hash_.emplace(hash, b);
  }
}

void KvBlockManager::ResetPrefixCache() {
  for (int32_t b : evictable_) {
    Uncache(b);
    free_.push_back(b);
  }
  evictable_.clear();
  evictable_pos_.clear();
}

void KvBlockManager::ShuffleFreeBlocks(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::shuffle(free_.begin(), free_.end(), rng);
}

}  // namespace bpt
