// One tier below the KV pool (local disk, a shared Redis): a store of encoded chunks by key.
// Every call may come from the tier store's loader and storer threads at once, so each tier is
// thread-safe. Errors other than NotFound mean the tier failed: the caller counts them and goes
// on without it (recompute), so a broken tier never fails a request.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "kv_chunk_key.h"
#include "status.h"

namespace bpt {

class KvTier {
 public:
  virtual ~KvTier() = default;
  // The metric label: host, disk or remote.
  virtual const char* name() const = 0;
  // Shared with other replicas (Redis): its chunks carry an HMAC when a tier key is set. A local
  // disk is this server's own, and its checksum is enough.
  virtual bool shared() const { return false; }
  // The chunk's bytes into *out; NotFound when the tier does not hold it.
  virtual Status Get(const ChunkKey& key, std::vector<uint8_t>* out) = 0;
  // Hands the chunk's bytes to `use` and returns what it returns (NotFound when the tier does
  // not hold it). A tier whose chunks are in memory passes them in place; the others read into
  // *scratch first (a buffer the caller reuses).
  virtual Status Read(const ChunkKey& key, std::vector<uint8_t>* scratch,
                      const std::function<Status(std::span<const uint8_t>)>& use) {
    const Status got = Get(key, scratch);
    return got.ok() ? use(*scratch) : got;
  }
  virtual StatusOr<bool> Contains(const ChunkKey& key) = 0;
  // Stores the chunk, pinned until `pin_until_s` (wall-clock seconds; 0: not pinned) where the
  // tier can pin; a chunk the tier holds already only has its pin extended.
  virtual Status Put(const ChunkKey& key, std::span<const uint8_t> bytes, int64_t pin_until_s) = 0;
  // Extends the pin of a chunk the tier holds (no-op where it cannot pin, or holds none).
  virtual void Pin(const ChunkKey& key, int64_t pin_until_s) {}
  // Removes a chunk that failed its checks, so it is not read again.
  virtual void Drop(const ChunkKey& key) = 0;
  // Bytes held and the budget; -1 where the tier does not know (Redis: its own maxmemory).
  virtual int64_t bytes_used() const = 0;
  virtual int64_t budget_bytes() const = 0;
  // Bytes pinned now, for refusing a retain that cannot fit; 0 where the tier cannot pin.
  virtual int64_t pinned_bytes() const { return 0; }
};

}  // namespace bpt
