// Continuous batching, as plain code: which sequences run in the next forward step and with
// how many tokens, under a per-step token budget. Decodes go first, so a long prefill, which
// advances one chunk per step, delays other streams by about one chunk's time; while requests
// wait, a prefill chunk takes at most half a step, so newcomers are admitted at once. The scheduler
// owns the sequences' KV blocks (through the KvBlockManager) and returns a plain StepPlan that
// a backend executes; it needs no backend to be tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine_options.h"
#include "generation.h"
#include "kv_block_manager.h"
#include "kv_tier_link.h"
#include "status.h"

namespace bpt {

using SteadyTime = std::chrono::steady_clock::time_point;

// One sequence's part of a step: tokens [start, start + num_tokens) of its token list.
struct ScheduledChunk {
  int64_t seq_id;
  int64_t start;
  int32_t num_tokens;
  bool needs_logits;            // the chunk reaches the sequence's last token
  const BlockTable* block_table;
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;  // decodes first, then prefill chunks
  std::vector<int64_t> preempted;      // blocks freed; they will be recomputed
  std::vector<int64_t> expired;        // deadline passed: removed, blocks freed
  int64_t num_tokens = 0;
};

class Scheduler {
 public:
  Scheduler(const SchedulerOptions& options, KvBlockManager& blocks);

  // Queues request as sequence `id`, taking its prompt as the sequence's token list: the one
  // copy of the prompt from here on. ResourceExhausted when the sequence can never fit the KV
  // pool (the one place that refuses on KV capacity) or the queue is full (the one queue bound).
  Status Add(int64_t id, GenerationRequest request);
  // Removes a sequence wherever it is (waiting or running) and frees its blocks.
  void Remove(int64_t id);
  // Removes expired sequences, then plans the next step.
  StepPlan Schedule(SteadyTime now);
  // After the step: the chunk's tokens are in the KV cache.
  void OnChunkComputed(const ScheduledChunk& chunk);
  // A token was sampled for the sequence (after a chunk that needed logits).
  void AppendToken(int64_t id, int32_t token);
  // The sequence is done: its computed full blocks join the prefix cache, the rest is freed.
  void Finish(int64_t id);

  // The KV tiers below the pool (null: none). At a waiting sequence's first admission, past the
  // pool's match, the tiers are probed for the prompt's next chunks; the sequence waits (others
  // run) while they load, then prefills only the rest. Every sequence's full chunks are offered
  // to the tiers when its blocks are released.
  void SetTierLink(KvTierLink* link) { tier_link_ = link; }
  // The tiers hold the sequence's chunks up to `available_end`: returns the end to load (blocks
  // reserved for it), or 0 to load nothing (the sequence was removed, or the pool is short).
  int64_t OnTierProbed(int64_t id, int64_t available_end);
  // Tokens [0, loaded_end) of the sequence are in its blocks; the rest of what was reserved for
  // the load is given back. The sequence may be admitted from the next Schedule.
  void OnTierLoaded(int64_t id, int64_t loaded_end);

  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return waiting_.size(); }
  int64_t num_preemptions() const { return num_preemptions_; }
  // Tokens of the sequence (prompt, then generated), prompt length, tokens computed.
  const std::vector<int32_t>& tokens(int64_t id) const { return At(id).tokens; }
  int64_t prompt_length(int64_t id) const { return At(id).prompt_length; }
  int64_t num_computed(int64_t id) const { return At(id).num_computed; }
  int64_t cached_prompt_tokens(int64_t id) const { return At(id).cached_prompt_tokens; }
  // Of those, the tokens the pool held (the rest came from the tiers).
  int64_t pool_cached_tokens(int64_t id) const { return At(id).pool_cached_tokens; }
  std::optional<SteadyTime> first_scheduled(int64_t id) const { return At(id).first_scheduled; }
  bool Contains(int64_t id) const { return seqs_.count(id) != 0; }
  const BlockTable& block_table(int64_t id) const { return At(id).table; }

 private:
  struct Sequence {
    int priority = 0;            // lower runs first; equal priorities run in arrival order
    bool use_prefix_cache = true;
    std::string cache_salt;
    uint64_t salt_seed = 0;      // the pool's hash chain root for cache_salt
    int64_t retain_s = 0;
    std::optional<SteadyTime> deadline;
    std::vector<int32_t> tokens;  // the prompt, then the generated tokens
    int64_t prompt_length = 0;
    int64_t num_computed = 0;
    int64_t cached_prompt_tokens = 0;
    uint64_t arrival = 0;
    bool matched_prefix = false;  // the prefix cache is consulted once, at first admission
    int64_t pool_cached_tokens = 0;
    // The tiers below the pool: asked once per match; probing and loading hold the sequence back.
    enum class TierState { kUntried, kProbing, kLoading, kWaitingForOther, kDone } tier = TierState::kUntried;
    BlockTable table;
    std::optional<SteadyTime> first_scheduled;
  };
  // The sequence the engine names: one the scheduler holds (Contains), or a bug.
  const Sequence& At(int64_t id) const;
  Sequence& At(int64_t id) { return const_cast<Sequence&>(std::as_const(*this).At(id)); }
  void Preempt(int64_t id);
  void ReleaseBlocks(int64_t id, Sequence& s, bool offer_to_tiers);
  void InsertWaiting(int64_t id);
  // At first admission, past the pool's match: true when the sequence now waits for the tiers.
  bool StartTierProbe(int64_t id, Sequence& s);
  // Sequences waiting for another's load match again: the load, or the probe, ended.
  void WakeTierWaiters();

  SchedulerOptions options_;
  KvBlockManager& blocks_;
  std::map<int64_t, Sequence> seqs_;
  std::vector<int64_t> waiting_;  // by (priority, arrival)
  std::vector<int64_t> running_;  // by arrival
  uint64_t next_arrival_ = 0;
  int64_t num_preemptions_ = 0;
  KvTierLink* tier_link_ = nullptr;
  // Tables of sequences removed while their blocks were loading: freed when the load ends.
  std::map<int64_t, BlockTable> loading_orphans_;
};

}  // namespace bpt
