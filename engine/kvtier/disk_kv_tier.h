// The disk tier: one file per chunk, <dir>/<key hex>.kv, under a byte budget, evicted least
// recently used first. Writes are atomic (a temporary file, fsync, rename, fsync of the
// directory), so a crash or a power loss at any point leaves either the whole chunk or none of it; temporary files left by a crash are removed
// at open. A file's modification time is its last use, or, while in the future, the end of its
// pin (retain_s), so both survive a restart without an index file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "chunk_lru.h"
#include "kv_tier.h"

namespace bpt {

struct DiskKvTierOptions {
  std::string dir;
  int64_t budget_bytes = 0;
  // Wall-clock seconds; tests inject their own to pin and expire without waiting.
  std::function<int64_t()> now_s;
};

// Test hooks: where the next Put stops as if the process died there, or the error it meets.
enum class DiskWriteFault { kNone, kCrashAfterCreate, kCrashMidWrite, kCrashBeforeRename, kNoSpace };

class DiskKvTier : public KvTier {
 public:
  // Creates the directory if needed, removes temporary files a crash left, indexes the chunks.
  static StatusOr<std::unique_ptr<DiskKvTier>> Open(DiskKvTierOptions options);

  const char* name() const override { return "disk"; }
  Status Get(const ChunkKey& key, std::vector<uint8_t>* out) override;
  StatusOr<bool> Contains(const ChunkKey& key) override;
  Status Put(const ChunkKey& key, std::span<const uint8_t> bytes, int64_t pin_until_s) override;
  void Pin(const ChunkKey& key, int64_t pin_until_s) override;
  void Drop(const ChunkKey& key) override;
  int64_t bytes_used() const override;
  int64_t budget_bytes() const override { return options_.budget_bytes; }
  int64_t pinned_bytes() const override;
  int64_t num_chunks() const;

  void SetWriteFaultForTest(DiskWriteFault fault);

 private:
  explicit DiskKvTier(DiskKvTierOptions options)
      : options_(std::move(options)), books_(options_.budget_bytes, options_.now_s) {}
  std::string PathOf(const ChunkKey& key) const;
  // Evicts (unlinks) unpinned chunks, least recently used first, until `incoming` more bytes fit.
  bool MakeRoomLocked(int64_t incoming);
  void RemoveLocked(const ChunkKey& key);
  // Marks a held chunk used (and pinned until pin_until_s); false when it is not held.
  bool TouchLocked(const ChunkKey& key, int64_t pin_until_s);

  DiskKvTierOptions options_;
  mutable std::mutex mu_;
  ChunkLru books_;
  uint64_t next_temp_ = 0;
  DiskWriteFault fault_ = DiskWriteFault::kNone;
};

}  // namespace bpt
