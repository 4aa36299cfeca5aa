// The KV tiers below the pool, as the scheduler sees them (KvTierLink): chunk keys, probes and
// loads on a loader thread, writes on a storer thread, so neither the engine's thread nor a gRPC
// thread ever waits on a disk or on Redis. Blocks being loaded belong to their sequence; blocks
// being written are held (a reference each) until that chunk's write is done, at most
// max_held_blocks at once.
// Results come back to the engine's thread through Poll, once per step.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "kv_block_manager.h"
#include "kv_chunk_codec.h"
#include "kv_chunk_key.h"
#include "kv_tier.h"
#include "kv_tier_link.h"
#include "kv_tier_stats.h"
#include "scheduler.h"
#include "status.h"

namespace bpt {

// Copies of whole blocks between the pool and host memory; the payload of a chunk is
// [num_layers][2 (K, V)][blocks][block_size][kv_dim] in the KV dtype. Called from the tier
// threads while steps run on other blocks. A block of -1 in a write is left as it is.
// wait_for_steps runs on the engine's thread before blocks are handed to the storer: a device
// that runs steps asynchronously may still be writing their KV.
struct KvBlockCopier {
  std::function<Status(std::span<const int32_t> blocks, uint8_t* host)> read;
  std::function<Status(std::span<const int32_t> blocks, const uint8_t* host)> write;
  std::function<Status()> wait_for_steps;
};

struct KvTierStoreOptions {
  int chunk_tokens = 256;
  int block_size = 64;
  int64_t block_payload_bytes = 0;  // one block's KV, every layer, K and V
  ChunkKey model_fingerprint;
  std::string hmac_key;             // for the shared tiers' chunks; empty: none carry an HMAC
  int64_t max_held_blocks = 0;      // blocks writes may hold at once
  std::function<int64_t()> now_s;   // wall clock for pins; tests inject theirs
};

// What one load gave a sequence.
struct KvLoadOutcome {
  int64_t host_tokens = 0;
  int64_t disk_tokens = 0;
  int64_t remote_tokens = 0;
  double seconds = 0;  // from the probe's start to the load's end
};

class KvTierStore : public KvTierLink {
 public:
  // tiers: fastest first (host, disk, then remote); each chunk is read from the first that has it.
  KvTierStore(KvTierStoreOptions options, std::vector<std::unique_ptr<KvTier>> tiers, KvBlockManager& blocks,
              KvBlockCopier copier);
  ~KvTierStore() override;  // stops the threads; what is queued is dropped

  // KvTierLink, from the engine's thread.
  int chunk_tokens() const override { return options_.chunk_tokens; }
  ProbeStart StartProbe(int64_t seq_id, const std::string& cache_salt, std::span<const int32_t> tokens,
                        int64_t matched, int64_t end) override;
  void StartLoad(int64_t seq_id, int64_t end, const BlockTable& table) override;
  void Store(int64_t seq_id, const std::string& cache_salt, std::span<const int32_t> tokens, int64_t num_computed,
             const BlockTable& table, int64_t retain_s) override;

  // From the engine's thread, once per step: probes answered go to the scheduler (and loads
  // start), loads done go to the scheduler and to on_loaded, writes done give their blocks back
  // and go to on_stored with the sequence's tokens the tiers now hold.
  void Poll(Scheduler& scheduler, const std::function<void(int64_t seq_id, const KvLoadOutcome&)>& on_loaded,
            const std::function<void(int64_t seq_id, int64_t stored_tokens)>& on_stored);
  // Jobs whose results Poll has not taken yet.
  bool busy() const;
  // Whether a write for the sequence is queued or running (its result is still to come).
  bool StorePending(int64_t seq_id) const;
  // Waits until a job's result is ready for Poll, or `timeout` passes.
  void WaitForResult(std::chrono::milliseconds timeout);
  // Waits for every queued write until `deadline` (the drain); false when some were left.
  bool FlushStores(std::chrono::steady_clock::time_point deadline);
  // From the engine's thread (the drain, once no request runs, before its last FlushStores):
  // writes again the chunks of sequences whose writes met a tier that was down (Unavailable)
  // or were skipped over the cap, where the pool still caches their blocks, with no cap and
  // their pins; each tier is asked first, so only what it lacks is written, and a tier still
  // down fails the whole round once. Failures again are kept for the next call. Returns the
  // chunks queued.
  int64_t RetryIncompleteStores();

  KvTierStats TakeStats();
  const KvTier* tier(const char* name) const;
  // Where retain_s pins a document: the disk when there is one (persistent, and the larger),
  // else host memory; null when no tier can pin (Redis alone).
  const KvTier* pinning_tier() const { return pin_tier_ < 0 ? nullptr : tiers_[pin_tier_].get(); }
  int64_t held_blocks() const { return held_blocks_; }
  int64_t chunk_bytes() const;  // one encoded chunk on a local tier (the disk's unit of budget)

 private:
  struct LoadJob;
  struct StoreJob;
  void LoaderLoop();
  void StorerLoop();
  void Probe(LoadJob& job);
  void Load(LoadJob& job);
  void Write(StoreJob& job);
  // Store's body: failure_scope names the writes a failed tier skips (StoreJob), max_held_blocks
  // caps the blocks writes hold at once. Returns the chunks queued.
  int64_t StoreChunks(int64_t seq_id, int64_t failure_scope, const std::string& cache_salt,
                   std::span<const int32_t> tokens, int64_t num_computed, const BlockTable& table,
                   int64_t pin_until_s, int64_t max_held_blocks);
  void CountDrop(ChunkDropReason reason);
  ChunkIdentity IdentityOf(const ChunkKey& key, std::span<const int32_t> tokens) const {
    return {options_.model_fingerprint, key, tokens};
  }

  KvTierStoreOptions options_;
  std::vector<std::unique_ptr<KvTier>> tiers_;
  KvBlockManager& blocks_;
  KvBlockCopier copier_;
  KvChunkCodec local_codec_;   // checksum only
  KvChunkCodec shared_codec_;  // checksum and, with a tier key, HMAC
  const KvChunkCodec& CodecOf(const KvTier& tier) const { return tier.shared() ? shared_codec_ : local_codec_; }
  int blocks_per_chunk_;
  int pin_tier_ = -1;  // index in tiers_

  // The engine's thread only.
  std::map<int64_t, std::unique_ptr<LoadJob>> loads_;           // by sequence, probing or loading
  std::unordered_set<ChunkKey, ChunkKeyHash> loading_keys_;      // chunks some load will bring
  // A sequence's writes whose results Poll has not all taken: one job per chunk, so each chunk's
  // blocks go back as soon as it is written.
  // The chunks a Store wrote: what a retry matches in the pool and writes again.
  struct StoredPrefix {
    std::string cache_salt;
    // [num_chunks * chunk_tokens]: the one copy, shared with the writes' jobs
    std::shared_ptr<const std::vector<int32_t>> tokens;
    ChunkKey last_key;        // of its last chunk: names the whole prefix
    int64_t pin_until_s = 0;  // its retain_s pin, which a retry keeps
  };
  struct SequenceStore {
    int pending = 0;
    std::vector<char> in_some_tier;  // per full chunk of the sequence
    bool retry = false;              // a write met a tier that was down, or was skipped
    StoredPrefix prefix;             // the longest the sequence stored
  };
  std::map<int64_t, SequenceStore> stores_pending_;
  // Prefixes to write again (RetryIncompleteStores), oldest first, each once, holding at most
  // the pool's capacity in tokens (retry_tokens_).
  void QueueRetry(StoredPrefix prefix);
  std::deque<StoredPrefix> retries_;
  int64_t retry_tokens_ = 0;
  // Negative, no request's: the sequence ids of retries, and each round's failure scope.
  int64_t next_retry_id_ = -1;
  int64_t held_blocks_ = 0;

  // Shared with the threads, under mu_.
  mutable std::mutex mu_;
  std::condition_variable work_cv_;    // the threads wait for jobs
  std::condition_variable result_cv_;  // the engine waits for results
  bool stop_ = false;
  std::deque<LoadJob*> load_queue_;
  std::deque<LoadJob*> load_results_;
  std::deque<std::unique_ptr<StoreJob>> store_queue_;
  std::deque<std::unique_ptr<StoreJob>> store_results_;
  bool storing_ = false;  // the storer is writing a job it took from the queue
  // Shared-tier chunks that failed their HMAC here (a key rotated, or forged): rewritten by the
  // next write of the same chunk rather than taken as present. Bounded by the chunks loaded.
  std::unordered_set<ChunkKey, ChunkKeyHash> unauthenticated_;
  // The storer's own: a tier that failed a write of a sequence is not tried again for the rest
  // of that sequence's chunks (or of a drain's retries), so a Redis that is down costs one
  // timeout per sequence, not per chunk.
  static constexpr int64_t kNoFailureScope = INT64_MIN;
  std::vector<int64_t> failed_scope_;    // per tier
  std::vector<StatusCode> failed_code_;  // per tier: why it failed for failed_scope_
  std::vector<uint8_t> encoded_;  // the storer's chunk buffer, reused
  KvTierStats stats_;
  std::thread loader_;
  std::thread storer_;
};

}  // namespace bpt
