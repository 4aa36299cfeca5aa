#include "chunk_lru.h"

#include <algorithm>

#include "check.h"

namespace bpt {

int64_t ChunkLru::Touch(const ChunkKey& key, int64_t pin_until_s) {
  const auto it = entries_.find(key);
  if (it == entries_.end()) return -1;
  Entry& entry = it->second;
  lru_.splice(lru_.end(), lru_, entry.lru);
  entry.pin_until_s = std::max(entry.pin_until_s, pin_until_s);
  return entry.pin_until_s;
}

void ChunkLru::Insert(const ChunkKey& key, int64_t bytes, int64_t pin_until_s) {
  BPT_CHECK(!Contains(key), "chunk " + key.Hex() + " is in the books already");
  const auto lru = lru_.insert(lru_.end(), key);
  entries_.emplace(key, Entry{bytes, pin_until_s > now_s_() ? pin_until_s : 0, lru});
  bytes_used_ += bytes;
}

void ChunkLru::Remove(const ChunkKey& key) {
  const auto it = entries_.find(key);
  if (it == entries_.end()) return;
  bytes_used_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

bool ChunkLru::MakeRoom(int64_t incoming, std::vector<ChunkKey>* evicted) {
  if (bytes_used_ + incoming <= budget_bytes_) return true;
  const int64_t now = now_s_();
  if (incoming > 0) {
    int64_t evictable = 0;
    for (const auto& [key, entry] : entries_)
      if (entry.pin_until_s <= now) evictable += entry.bytes;
    if (bytes_used_ - evictable + incoming > budget_bytes_) return false;
  }
  for (auto it = lru_.begin(); bytes_used_ + incoming > budget_bytes_ && it != lru_.end();) {
    const ChunkKey key = *it++;  // Remove erases the current position only
    if (entries_.at(key).pin_until_s > now) continue;
    Remove(key);
    evicted->push_back(key);
  }
  return bytes_used_ + incoming <= budget_bytes_;
}

int64_t ChunkLru::pinned_bytes() const {
  const int64_t now = now_s_();
  int64_t pinned = 0;
  for (const auto& [key, entry] : entries_)
    if (entry.pin_until_s > now) pinned += entry.bytes;
  return pinned;
}

}  // namespace bpt
