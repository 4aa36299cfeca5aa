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
#include <utility>
#include <vector>

#include "engine_options.h"
#include "generation.h"
#include "kv_block_manager.h"
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

  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return waiting_.size(); }
  int64_t num_preemptions() const { return num_preemptions_; }
  // Tokens of the sequence (prompt, then generated), prompt length, tokens computed.
  const std::vector<int32_t>& tokens(int64_t id) const { return At(id).tokens; }
  int64_t prompt_length(int64_t id) const { return At(id).prompt_length; }
  int64_t num_computed(int64_t id) const { return At(id).num_computed; }
  int64_t cached_prompt_tokens(int64_t id) const { return At(id).cached_prompt_tokens; }
  std::optional<SteadyTime> first_scheduled(int64_t id) const { return At(id).first_scheduled; }
  bool Contains(int64_t id) const { return seqs_.count(id) != 0; }

 private:
  struct Sequence {
    int priority = 0;            // lower runs first; equal priorities run in arrival order
    bool use_prefix_cache = true;
    std::optional<SteadyTime> deadline;
    std::vector<int32_t> tokens;  // the prompt, then the generated tokens
    int64_t prompt_length = 0;
    int64_t num_computed = 0;
    int64_t cached_prompt_tokens = 0;
    uint64_t arrival = 0;
    bool matched_prefix = false;  // the prefix cache is consulted once, at first admission
    BlockTable table;
    std::optional<SteadyTime> first_scheduled;
  };
  // The sequence the engine names: one the scheduler holds (Contains), or a bug.
  const Sequence& At(int64_t id) const;
  Sequence& At(int64_t id) { return const_cast<Sequence&>(std::as_const(*this).At(id)); }
  void Preempt(int64_t id);
  void ReleaseBlocks(Sequence& s);
  void InsertWaiting(int64_t id);

  SchedulerOptions options_;
  KvBlockManager& blocks_;
  std::map<int64_t, Sequence> seqs_;
  std::vector<int64_t> waiting_;  // by (priority, arrival)
  std::vector<int64_t> running_;  // by arrival
  uint64_t next_arrival_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace bpt
