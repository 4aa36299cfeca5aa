#include "host_kv_tier.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

namespace bpt {
namespace {

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

HostMemoryAllocator PlainHostMemory() {
  return {[](size_t bytes) { return std::malloc(bytes); }, [](void* p) { std::free(p); }};
}

StatusOr<std::unique_ptr<HostKvTier>> HostKvTier::Open(HostKvTierOptions options) {
  if (options.slot_bytes <= 0) return InvalidArgument("host tier: a chunk must have a size");
  const int64_t slots = options.budget_bytes / options.slot_bytes;
  if (slots < 1)
    return InvalidArgument("kv_host_gib (" + std::to_string(options.budget_bytes) +
                           " bytes) cannot hold one KV chunk of " + std::to_string(options.slot_bytes) + " bytes");
  if (slots > INT32_MAX) return InvalidArgument("kv_host_gib holds more than 2^31 chunks");
  if (!options.now_s) options.now_s = WallSeconds;
  const size_t arena_bytes = static_cast<size_t>(slots * options.slot_bytes);
  void* arena = options.memory.allocate(arena_bytes);
  if (arena == nullptr)
    return ResourceExhausted("kv_host_gib: cannot allocate " + std::to_string(arena_bytes) +
                             " bytes of (page-locked) host memory for the host tier");
  return std::unique_ptr<HostKvTier>(new HostKvTier(std::move(options), static_cast<uint8_t*>(arena),
                                                    static_cast<int32_t>(slots)));
}

HostKvTier::HostKvTier(HostKvTierOptions options, uint8_t* arena, int32_t num_slots)
    : options_(std::move(options)),
      arena_(arena),
      num_slots_(num_slots),
      books_(static_cast<int64_t>(num_slots) * options_.slot_bytes, options_.now_s) {
  free_slots_.reserve(static_cast<size_t>(num_slots));
  for (int32_t i = num_slots - 1; i >= 0; --i) free_slots_.push_back(i);
  readers_.assign(static_cast<size_t>(num_slots), 0);
  released_.assign(static_cast<size_t>(num_slots), 0);
}

HostKvTier::~HostKvTier() { options_.memory.free(arena_); }

void HostKvTier::ReleaseSlotLocked(int32_t index) {
  if (readers_[index] > 0) {
    released_[index] = 1;
    books_.Reserve(options_.slot_bytes);
    return;
  }
  free_slots_.push_back(index);
}

void HostKvTier::RemoveLocked(const ChunkKey& key) {
  const auto it = slots_.find(key);
  if (it == slots_.end()) return;
  const int32_t index = it->second.index;
  slots_.erase(it);
  books_.Remove(key);
  ReleaseSlotLocked(index);
}

Status HostKvTier::Read(const ChunkKey& key, std::vector<uint8_t>*,
                        const std::function<Status(std::span<const uint8_t>)>& use) {
  Slot slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = slots_.find(key);
    if (it == slots_.end()) return NotFound("not in host memory");
    books_.Touch(key, 0);
    slot = it->second;
    ++readers_[slot.index];
  }
  const Status used = use(std::span<const uint8_t>(SlotData(slot.index), static_cast<size_t>(slot.bytes)));
  std::lock_guard<std::mutex> lock(mu_);
  if (--readers_[slot.index] == 0 && released_[slot.index]) {
    released_[slot.index] = 0;
    books_.Unreserve(options_.slot_bytes);
    free_slots_.push_back(slot.index);
  }
  return used;
}

Status HostKvTier::Get(const ChunkKey& key, std::vector<uint8_t>* out) {
  return Read(key, nullptr, [out](std::span<const uint8_t> bytes) {
    out->assign(bytes.begin(), bytes.end());
    return OkStatus();
  });
}

StatusOr<bool> HostKvTier::Contains(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return slots_.count(key) != 0;
}

Status HostKvTier::Put(const ChunkKey& key, std::span<const uint8_t> bytes, int64_t pin_until_s) {
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (size > options_.slot_bytes)
    return InvalidArgument("host tier: a chunk of " + std::to_string(size) + " bytes is larger than its slots of " +
                           std::to_string(options_.slot_bytes));
  int32_t index;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (books_.Touch(key, pin_until_s) >= 0) return OkStatus();
    // An evicted chunk being read keeps its slot (and its bytes) until the read ends: evict
    // again, until a slot is free or nothing more can go.
    bool fits = true;
    while (fits && free_slots_.empty()) {
      std::vector<ChunkKey> evicted;
      fits = books_.MakeRoom(options_.slot_bytes, &evicted);
      for (const ChunkKey& k : evicted) {
        const int32_t evicted_index = slots_.at(k).index;
        slots_.erase(k);
        ReleaseSlotLocked(evicted_index);
      }
    }
    if (!fits)
      return ResourceExhausted("host tier budget of " + std::to_string(budget_bytes()) +
                               " bytes is full of pinned chunks (or chunks being read)");
    // The slot is the writer's alone from here; the copy into it runs outside the lock, so a
    // load reading another slot does not wait for it.
    books_.Reserve(options_.slot_bytes);
    index = free_slots_.back();
    free_slots_.pop_back();
  }
  std::memcpy(SlotData(index), bytes.data(), bytes.size());
  std::lock_guard<std::mutex> lock(mu_);
  books_.Unreserve(options_.slot_bytes);
  if (books_.Touch(key, pin_until_s) >= 0) {  // another thread's Put of it got here first
    free_slots_.push_back(index);
    return OkStatus();
  }
  books_.Insert(key, options_.slot_bytes, pin_until_s);
  slots_.emplace(key, Slot{index, size});
  return OkStatus();
}

void HostKvTier::Pin(const ChunkKey& key, int64_t pin_until_s) {
  std::lock_guard<std::mutex> lock(mu_);
  books_.Touch(key, pin_until_s);
}

void HostKvTier::Drop(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  RemoveLocked(key);
}

int64_t HostKvTier::bytes_used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return books_.bytes_used();
}

int64_t HostKvTier::pinned_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return books_.pinned_bytes();
}

int64_t HostKvTier::num_chunks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return books_.num_chunks();
}

}  // namespace bpt
