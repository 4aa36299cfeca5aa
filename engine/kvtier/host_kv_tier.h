// The host-memory tier below a GPU's KV pool: encoded chunks in one arena of fixed-size slots
// (every chunk a local tier gets has the same size), least recently used first out, pins as on
// disk. The GPU backend gives the arena page-locked, so a load is DMA from the slot itself
// (Read hands the slot over in place); a store copies the encoded chunk in. On the
// CPU device the pool is host memory already, and the engine does not open this tier.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "chunk_lru.h"
#include "kv_tier.h"

namespace bpt {

// Where the arena comes from; allocate returns nullptr when it cannot.
struct HostMemoryAllocator {
  std::function<void*(size_t bytes)> allocate;
  std::function<void(void* p)> free;
};
// Plain memory, for a backend that has no page-locked kind (and for tests).
HostMemoryAllocator PlainHostMemory();

struct HostKvTierOptions {
  int64_t budget_bytes = 0;  // from --kv-host-gib
  int64_t slot_bytes = 0;    // one encoded chunk
  HostMemoryAllocator memory = PlainHostMemory();
  std::function<int64_t()> now_s;  // wall-clock seconds for pins; tests inject theirs
};

class HostKvTier : public KvTier {
 public:
  // Allocates the whole arena now: budget_bytes / slot_bytes slots, at least one.
  static StatusOr<std::unique_ptr<HostKvTier>> Open(HostKvTierOptions options);
  ~HostKvTier() override;

  const char* name() const override { return "host"; }
  Status Get(const ChunkKey& key, std::vector<uint8_t>* out) override;
  // The slot itself. The lock is not held during `use` (a checksum and a DMA): a slot being read
  // is never given to another chunk, and one evicted or dropped meanwhile is freed when its
  // last reader ends.
  Status Read(const ChunkKey& key, std::vector<uint8_t>* scratch,
              const std::function<Status(std::span<const uint8_t>)>& use) override;
  StatusOr<bool> Contains(const ChunkKey& key) override;
  Status Put(const ChunkKey& key, std::span<const uint8_t> bytes, int64_t pin_until_s) override;
  void Pin(const ChunkKey& key, int64_t pin_until_s) override;
  void Drop(const ChunkKey& key) override;
  int64_t bytes_used() const override;
  int64_t budget_bytes() const override { return static_cast<int64_t>(num_slots_) * options_.slot_bytes; }
  int64_t pinned_bytes() const override;
  int64_t num_chunks() const;

 private:
  struct Slot {
    int32_t index;
    int64_t bytes;
  };
  HostKvTier(HostKvTierOptions options, uint8_t* arena, int32_t num_slots);
  uint8_t* SlotData(int32_t index) const { return arena_ + static_cast<int64_t>(index) * options_.slot_bytes; }
  void RemoveLocked(const ChunkKey& key);
  // A slot whose chunk left the books: free now, or once its readers end (its bytes stay
  // reserved in the books meanwhile, so the free slots always match the budget left).
  void ReleaseSlotLocked(int32_t index);

  HostKvTierOptions options_;
  uint8_t* arena_;  // [num_slots, slot_bytes]
  int32_t num_slots_;
  mutable std::mutex mu_;
  ChunkLru books_;  // each chunk costs a whole slot
  std::unordered_map<ChunkKey, Slot, ChunkKeyHash> slots_;
  std::vector<int32_t> free_slots_;
  std::vector<int32_t> readers_;   // [num_slots]: Reads in progress
  std::vector<char> released_;     // [num_slots]: left the books while read; freed by its last reader
};

}  // namespace bpt
