// The books of a tier that keeps its chunks on this machine (host memory, local disk): each
// chunk's size and pin, least recently used first, under a byte budget. Eviction takes unpinned
// chunks only, and a chunk that cannot fit even with every unpinned one gone evicts none (a
// refused write must not empty the tier). Not thread-safe: the tier calls it under its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <unordered_map>
#include <vector>

#include "kv_chunk_key.h"

namespace bpt {

class ChunkLru {
 public:
  // now_s: wall-clock seconds, against which pins are read.
  ChunkLru(int64_t budget_bytes, std::function<int64_t()> now_s)
      : budget_bytes_(budget_bytes), now_s_(std::move(now_s)) {}

  bool Contains(const ChunkKey& key) const { return entries_.count(key) != 0; }
  // A held chunk's size; 0 when it is not held.
  int64_t bytes_of(const ChunkKey& key) const {
    const auto it = entries_.find(key);
    return it == entries_.end() ? 0 : it->second.bytes;
  }
  // Makes a held chunk the most recently used and extends its pin; returns its pin's end (0:
  // none), or -1 when the chunk is not held.
  int64_t Touch(const ChunkKey& key, int64_t pin_until_s);
  // Adds a chunk the books do not hold, as the most recently used; a pin already past counts as none.
  void Insert(const ChunkKey& key, int64_t bytes, int64_t pin_until_s);
  void Remove(const ChunkKey& key);
  // Bytes counted as used without a chunk yet (a write in progress), so two threads never
  // overcommit the budget together; Unreserve when the write ends.
  void Reserve(int64_t bytes) { bytes_used_ += bytes; }
  void Unreserve(int64_t bytes) { bytes_used_ -= bytes; }
  // Chooses unpinned chunks, least recently used first, to evict so that `incoming` more bytes
  // fit, and forgets them; the caller frees what they held. False (and nothing chosen) when
  // they cannot fit; with incoming 0 it evicts down to the budget.
  bool MakeRoom(int64_t incoming, std::vector<ChunkKey>* evicted);

  int64_t bytes_used() const { return bytes_used_; }
  int64_t budget_bytes() const { return budget_bytes_; }
  int64_t pinned_bytes() const;
  int64_t num_chunks() const { return static_cast<int64_t>(entries_.size()); }
  int64_t now_s() const { return now_s_(); }

 private:
  struct Entry {
    int64_t bytes;
    int64_t pin_until_s;  // 0 or past: not pinned
    std::list<ChunkKey>::iterator lru;
  };
  int64_t budget_bytes_;
  std::function<int64_t()> now_s_;
  std::unordered_map<ChunkKey, Entry, ChunkKeyHash> entries_;
  std::list<ChunkKey> lru_;  // least recently used first
  int64_t bytes_used_ = 0;
};

}  // namespace bpt
