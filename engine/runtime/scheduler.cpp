#include "scheduler.h"

#include <algorithm>
#include <string>

#include "check.h"

namespace bpt {

Scheduler::Scheduler(const SchedulerOptions& options, KvBlockManager& blocks) : options_(options), blocks_(blocks) {}

const Scheduler::Sequence& Scheduler::At(int64_t id) const {
  auto it = seqs_.find(id);
  BPT_CHECK(it != seqs_.end(), "sequence " + std::to_string(id) + " is not in the scheduler");
  return it->second;
}

Status Scheduler::Add(int64_t id, GenerationRequest request) {
  const int64_t prompt_length = static_cast<int64_t>(request.prompt.size());
  const int max_new_tokens = request.stopping.max_new_tokens;
  if (prompt_length + max_new_tokens > blocks_.capacity_tokens())
    return ResourceExhausted("prompt (" + std::to_string(prompt_length) + " tokens) + max_new_tokens (" +
                             std::to_string(max_new_tokens) + ") exceeds the KV cache capacity of " +
                             std::to_string(blocks_.capacity_tokens()) + " tokens");
  if (static_cast<int>(waiting_.size()) >= options_.max_queue)
    return ResourceExhausted("the request queue is full (" + std::to_string(options_.max_queue) +
                             " waiting, --max-queue); retry later");
  if (seqs_.count(id) != 0) return Internal("sequence id " + std::to_string(id) + " is in use");
  Sequence s;
  s.priority = request.priority;
  s.use_prefix_cache = request.use_prefix_cache;
  s.cache_salt = std::move(request.cache_salt);
  s.salt_seed = PoolSaltSeed(s.cache_salt);
  s.retain_s = request.retain_s;
  s.deadline = request.deadline;
  s.tokens = std::move(request.prompt);
  s.prompt_length = prompt_length;
  s.arrival = next_arrival_++;
  seqs_.emplace(id, std::move(s));
  InsertWaiting(id);
  return OkStatus();
}

void Scheduler::InsertWaiting(int64_t id) {
  const Sequence& s = At(id);
  auto before = [&](int64_t other) {
    const Sequence& o = At(other);
    return std::make_pair(s.priority, s.arrival) < std::make_pair(o.priority, o.arrival);
  };
  waiting_.insert(std::find_if(waiting_.begin(), waiting_.end(), before), id);
}

void Scheduler::ReleaseBlocks(int64_t id, Sequence& s, bool offer_to_tiers) {
  if (s.use_prefix_cache) {
    blocks_.CachePrefix(s.tokens, s.num_computed, s.table, s.salt_seed);
    if (tier_link_ != nullptr && offer_to_tiers)
      tier_link_->Store(id, s.cache_salt, s.tokens, s.num_computed, s.table, s.retain_s);
  }
  blocks_.Release(&s.table);
}

void Scheduler::Remove(int64_t id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  if (it->second.tier == Sequence::TierState::kLoading) {
    loading_orphans_[id] = std::move(it->second.table);  // another thread writes into these blocks
    it->second.table.clear();
  }
  ReleaseBlocks(id, it->second, /*offer_to_tiers=*/true);
  running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), id), waiting_.end());
  seqs_.erase(it);
}

void Scheduler::Finish(int64_t id) { Remove(id); }

void Scheduler::Preempt(int64_t id) {
  Sequence& s = At(id);
  // Its computed blocks stay cached: recomputation may find them again. They are not written to
  // the tiers now: a write holds its blocks, and a preemption is there to free them; they are
  // written when the sequence ends.
  ReleaseBlocks(id, s, /*offer_to_tiers=*/false);
  s.num_computed = 0;
  s.matched_prefix = false;
  s.tier = Sequence::TierState::kUntried;
  running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
  InsertWaiting(id);
  ++num_preemptions_;
}

StepPlan Scheduler::Schedule(SteadyTime now) {
  StepPlan plan;
  for (auto it = seqs_.begin(); it != seqs_.end();) {
    const int64_t id = (it++)->first;  // Remove invalidates the current iterator only
    const auto& deadline = At(id).deadline;
    if (deadline && now >= *deadline) {
      plan.expired.push_back(id);
      Remove(id);
    }
  }
  int64_t budget = options_.prefill_block;
  std::vector<int64_t> scheduled;
  auto scheduled_already = [&](int64_t id) { return std::find(scheduled.begin(), scheduled.end(), id) != scheduled.end(); };
  // Running sequences: decodes (one token) first, then prefills in progress; oldest first.
  std::vector<int64_t> order = running_;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const auto remaining = [&](int64_t id) { return At(id).tokens.size() - At(id).num_computed; };
    return (remaining(a) == 1) > (remaining(b) == 1);
  });
  for (int64_t id : order) {
    if (budget == 0) break;
    if (std::find(running_.begin(), running_.end(), id) == running_.end()) continue;  // preempted meanwhile
    Sequence& s = At(id);
    const int64_t remaining = static_cast<int64_t>(s.tokens.size()) - s.num_computed;
    if (remaining <= 0) continue;  // waiting for its sampled token
    // While others wait, a prefill chunk takes at most half a step, so a request that arrives
    // during a long prefill starts at once instead of after the whole document.
    const int64_t cap = waiting_.empty() ? budget : std::min<int64_t>(budget, std::max(1, options_.prefill_block / 2));
    const int32_t n = static_cast<int32_t>(std::min(remaining, cap));
    // Short of blocks: preempt the newest running sequence that is not yet in this step.
    bool preempted_self = false;
    while (!blocks_.Reserve(&s.table, s.num_computed + n).ok()) {
      int64_t victim = -1;
      for (auto r = running_.rbegin(); r != running_.rend(); ++r)
        if (*r != id && !scheduled_already(*r)) {
          victim = *r;
          break;
        }
      if (victim < 0) victim = id;
      Preempt(victim);
      plan.preempted.push_back(victim);
      if (victim == id) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) continue;
    plan.chunks.push_back({id, s.num_computed, n, s.num_computed + n == static_cast<int64_t>(s.tokens.size()), &s.table});
    scheduled.push_back(id);
    budget -= n;
  }
  // Waiting sequences, by priority then arrival, while the budget and the batch allow. One that
  // waits for the tiers below the pool is passed over; the others keep their order.
  for (size_t i = 0; i < waiting_.size() && budget > 0 && static_cast<int>(running_.size()) < options_.max_running;) {
    const int64_t id = waiting_[i];
    Sequence& s = At(id);
    if (s.tier == Sequence::TierState::kProbing || s.tier == Sequence::TierState::kLoading ||
        s.tier == Sequence::TierState::kWaitingForOther) {
      ++i;
      continue;
    }
    if (!s.matched_prefix && s.use_prefix_cache && s.table.empty()) {
      s.num_computed = blocks_.MatchPrefix(s.tokens, &s.table, s.salt_seed);
      if (!s.first_scheduled) {
        s.cached_prompt_tokens = std::min(s.num_computed, s.prompt_length);
        s.pool_cached_tokens = s.cached_prompt_tokens;
      }
      if (StartTierProbe(id, s)) {
        ++i;
        continue;
      }
    }
    s.matched_prefix = true;
    const int64_t remaining = static_cast<int64_t>(s.tokens.size()) - s.num_computed;
    const int32_t n = static_cast<int32_t>(std::min(remaining, budget));
    if (!blocks_.Reserve(&s.table, s.num_computed + n).ok()) {
      // Not now: give back what the prefix match took, so the pool is not pinned by a waiter.
      blocks_.Release(&s.table);
      s.num_computed = 0;
      s.matched_prefix = false;
      break;
    }
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    running_.push_back(id);
    if (!s.first_scheduled) s.first_scheduled = now;
    plan.chunks.push_back({id, s.num_computed, n, s.num_computed + n == static_cast<int64_t>(s.tokens.size()), &s.table});
    budget -= n;
  }
  for (const auto& c : plan.chunks) plan.num_tokens += c.num_tokens;
  return plan;
}

bool Scheduler::StartTierProbe(int64_t id, Sequence& s) {
  if (tier_link_ == nullptr || s.tier != Sequence::TierState::kUntried) return false;
  s.tier = Sequence::TierState::kDone;
  const int64_t chunk = tier_link_->chunk_tokens();
  // Whole chunks of the prompt, leaving at least one token to compute, as MatchPrefix does.
  const int64_t end = (s.prompt_length - 1) / chunk * chunk;
  if (end <= s.num_computed) return false;
  if (tier_link_->StartProbe(id, s.cache_salt, s.tokens, s.num_computed, end) == KvTierLink::ProbeStart::kStarted) {
    s.tier = Sequence::TierState::kProbing;
    return true;
  }
  // Another sequence loads the same chunk: match again once it is in the pool.
  blocks_.Release(&s.table);
  s.num_computed = 0;
  s.tier = Sequence::TierState::kWaitingForOther;
  return true;
}

int64_t Scheduler::OnTierProbed(int64_t id, int64_t available_end) {
  // A probe that ends in no load ends the wait of those that wanted its first chunk.
  auto it = seqs_.find(id);
  if (it == seqs_.end() || it->second.tier != Sequence::TierState::kProbing) {
    WakeTierWaiters();
    return 0;
  }
  Sequence& s = it->second;
  s.tier = Sequence::TierState::kDone;
  const int64_t chunk = tier_link_->chunk_tokens();
  const int64_t block = blocks_.block_size();
  // No more than the pool can give now, in whole chunks.
  const int64_t affordable = (static_cast<int64_t>(s.table.size()) + blocks_.num_free_blocks()) * block / chunk * chunk;
  const int64_t end = std::min(available_end, affordable);
  if (end <= s.num_computed || !blocks_.Reserve(&s.table, end).ok()) {
    WakeTierWaiters();
    return 0;
  }
  s.tier = Sequence::TierState::kLoading;
  return end;
}

void Scheduler::OnTierLoaded(int64_t id, int64_t loaded_end) {
  const auto orphan = loading_orphans_.find(id);
  if (orphan != loading_orphans_.end()) {
    blocks_.Release(&orphan->second);
    loading_orphans_.erase(orphan);
  } else {
    Sequence& s = At(id);
    BPT_CHECK(s.tier == Sequence::TierState::kLoading, "sequence " + std::to_string(id) + " was not loading");
    s.tier = Sequence::TierState::kDone;
    if (loaded_end > s.num_computed) {
      s.num_computed = loaded_end;
      if (!s.first_scheduled) s.cached_prompt_tokens = std::min(s.num_computed, s.prompt_length);
    }
    blocks_.ReleaseTail(&s.table, static_cast<size_t>(blocks_.BlocksForTokens(s.num_computed)));
    // Published at once: a sequence waiting for these chunks matches them in the pool.
    if (s.use_prefix_cache) blocks_.CachePrefix(s.tokens, s.num_computed, s.table, s.salt_seed);
    s.matched_prefix = true;
  }
  WakeTierWaiters();
}

void Scheduler::WakeTierWaiters() {
  for (int64_t other : waiting_) {
    Sequence& w = At(other);
    if (w.tier != Sequence::TierState::kWaitingForOther) continue;
    w.tier = Sequence::TierState::kUntried;
    w.matched_prefix = false;
  }
}

void Scheduler::OnChunkComputed(const ScheduledChunk& chunk) {
  auto it = seqs_.find(chunk.seq_id);
  if (it != seqs_.end()) it->second.num_computed = chunk.start + chunk.num_tokens;
}

void Scheduler::AppendToken(int64_t id, int32_t token) { At(id).tokens.push_back(token); }

}  // namespace bpt
