// What the scheduler asks of the KV tiers below the pool (host memory, disk, Redis), as plain
// code: engine/kvtier implements it with threads and files; the scheduler's tests with a fake.
// Both calls come from the engine's thread and return at once; loads finish later through
// Scheduler::OnTierLoaded.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kv_block_manager.h"

namespace bpt {

class KvTierLink {
 public:
  enum class ProbeStart {
    kStarted,       // the tiers are asked which chunks they hold; Scheduler::OnTierProbed follows
    kWaitForOther,  // another sequence is loading the same first chunk: wait for it, then match again
  };
  virtual ~KvTierLink() = default;
  // Tokens per chunk: loads start and end on chunk boundaries (or where the pool's match ends).
  virtual int chunk_tokens() const = 0;
  // Asks, on another thread, how far past `matched` (where the pool's match ends, a block
  // boundary) the tiers hold the chunks of `tokens`, up to `end` (a chunk boundary). No block is
  // taken before the answer, so a miss costs the pool nothing.
  virtual ProbeStart StartProbe(int64_t seq_id, const std::string& cache_salt, std::span<const int32_t> tokens,
                                int64_t matched, int64_t end) = 0;
  // After OnTierProbed: loads the probed chunks up to `end` into the table's blocks for
  // positions [matched, end), on another thread; Scheduler::OnTierLoaded follows. An `end` at or
  // before `matched` ends the probe with nothing loaded.
  virtual void StartLoad(int64_t seq_id, int64_t end, const BlockTable& table) = 0;
  // The sequence's blocks are about to be released: the full chunks of tokens [0, num_computed)
  // that the tiers lack are written there, the blocks held meanwhile, and pinned retain_s
  // seconds (0: not) where the tier can pin.
  virtual void Store(int64_t seq_id, const std::string& cache_salt, std::span<const int32_t> tokens,
                     int64_t num_computed, const BlockTable& table, int64_t retain_s) = 0;
};

}  // namespace bpt
