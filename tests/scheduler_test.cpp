// The scheduler and block manager alone, with no backend: each step's plan, admission,
// priorities, preemption, deadlines, and a randomized run that must never leak or overfill.
#include "scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace bpt {
namespace {

using Clock = std::chrono::steady_clock;

// Sequence id's request: a prompt of its own tokens (no two sequences share a prefix).
GenerationRequest Spec(int64_t id, int prompt_length, int max_new_tokens, int priority = 0) {
  GenerationRequest s;
  for (int i = 0; i < prompt_length; ++i) s.prompt.push_back(static_cast<int32_t>(id * 1000 + i));
  s.stopping.max_new_tokens = max_new_tokens;
  s.priority = priority;
  s.use_prefix_cache = false;
  return s;
}

// Runs a plan as a backend would: every chunk computed, a token for each that needs logits.
void Execute(Scheduler& s, const StepPlan& plan) {
  for (const auto& c : plan.chunks) {
    s.OnChunkComputed(c);
    if (c.needs_logits) s.AppendToken(c.seq_id, 7);
  }
}

const ScheduledChunk* ChunkOf(const StepPlan& plan, int64_t id) {
  for (const auto& c : plan.chunks)
    if (c.seq_id == id) return &c;
  return nullptr;
}

TEST(Scheduler, LongPrefillAdvancesAChunkPerStepAndDecodesGoFirst) {
  KvBlockManager blocks(64, 8);
  Scheduler s({/*prefill_block=*/16, /*max_running=*/4, /*max_queue=*/8}, blocks);
  const auto now = Clock::now();
  ASSERT_TRUE(s.Add(1, Spec(1, 100, 4)).ok());
  auto plan = s.Schedule(now);
  ASSERT_EQ(plan.chunks.size(), 1u);
  EXPECT_EQ(plan.chunks[0].num_tokens, 16);
  EXPECT_FALSE(plan.chunks[0].needs_logits);
  Execute(s, plan);
  ASSERT_TRUE(s.Add(2, Spec(2, 3, 20)).ok());
  plan = s.Schedule(now);  // the newcomer is admitted beside the long prefill's chunk
  ASSERT_NE(ChunkOf(plan, 2), nullptr);
  EXPECT_LE(ChunkOf(plan, 1)->num_tokens, 8) << "half a step while another waits";
  Execute(s, plan);
  int steps_with_decode = 0;
  for (int step = 0; step < 12; ++step) {
    plan = s.Schedule(now);
    const ScheduledChunk* short_chunk = ChunkOf(plan, 2);
    const ScheduledChunk* long_chunk = ChunkOf(plan, 1);
    EXPECT_LE(plan.num_tokens, 16);
    if (short_chunk != nullptr && short_chunk->needs_logits && s.num_computed(2) >= 3) {
      ++steps_with_decode;
      EXPECT_TRUE(plan.chunks.front().num_tokens == 1 && plan.chunks.front().needs_logits)
          << "decodes go before prefill chunks";
    }
    if (long_chunk != nullptr) {
      EXPECT_LE(long_chunk->num_tokens, 16);
    }
    Execute(s, plan);
  }
  EXPECT_GE(steps_with_decode, 10) << "the short request decodes every step during the long prefill";
}

TEST(Scheduler, AdmissionRefusesWhatCanNeverFitAndBoundsTheQueue) {
  KvBlockManager blocks(4, 8);  // 32 tokens
  Scheduler s({/*prefill_block=*/16, /*max_running=*/2, /*max_queue=*/2}, blocks);
  EXPECT_EQ(s.Add(1, Spec(1, 30, 3)).code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(s.Add(2, Spec(2, 10, 3)).ok());
  EXPECT_TRUE(s.Add(3, Spec(3, 10, 3)).ok());
  const Status full = s.Add(4, Spec(4, 10, 3));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("queue is full"), std::string::npos);
}

TEST(Scheduler, PriorityThenArrival) {
  KvBlockManager blocks(64, 8);
  Scheduler s({/*prefill_block=*/64, /*max_running=*/1, /*max_queue=*/8}, blocks);
  const auto now = Clock::now();
  ASSERT_TRUE(s.Add(1, Spec(1, 4, 1, /*priority=*/5)).ok());
  ASSERT_TRUE(s.Add(2, Spec(2, 4, 1, 0)).ok());
  ASSERT_TRUE(s.Add(3, Spec(3, 4, 1, 0)).ok());
  std::vector<int64_t> order;
  for (int i = 0; i < 3; ++i) {
    auto plan = s.Schedule(now);
    ASSERT_EQ(plan.chunks.size(), 1u);
    order.push_back(plan.chunks[0].seq_id);
    s.Finish(plan.chunks[0].seq_id);
  }
  EXPECT_EQ(order, (std::vector<int64_t>{2, 3, 1}));
}

TEST(Scheduler, PreemptsTheNewestWhenThePoolRunsShortAndRecomputesIt) {
  KvBlockManager blocks(6, 4);  // 24 tokens
  Scheduler s({/*prefill_block=*/64, /*max_running=*/4, /*max_queue=*/8}, blocks);
  const auto now = Clock::now();
  ASSERT_TRUE(s.Add(1, Spec(1, 8, 12)).ok());
  ASSERT_TRUE(s.Add(2, Spec(2, 8, 12)).ok());
  bool preempted = false;
  for (int step = 0; step < 40 && (s.Contains(1) || s.Contains(2)); ++step) {
    auto plan = s.Schedule(now);
    for (int64_t p : plan.preempted) {
      EXPECT_EQ(p, 2) << "the newest sequence goes first";
      EXPECT_EQ(s.num_computed(2), 0) << "its KV is recomputed";
      preempted = true;
    }
    Execute(s, plan);
    for (int64_t id : {1, 2})
      if (s.Contains(id) && static_cast<int64_t>(s.tokens(id).size()) >= 8 + 12) s.Finish(id);
  }
  EXPECT_TRUE(preempted);
  EXPECT_EQ(s.num_preemptions(), 1);
  EXPECT_FALSE(s.Contains(1) || s.Contains(2)) << "both finished";
  EXPECT_EQ(blocks.num_free_blocks(), 6);
}

TEST(Scheduler, ExpiredSequencesLeaveWithTheirBlocks) {
  KvBlockManager blocks(16, 4);
  Scheduler s({/*prefill_block=*/64, /*max_running=*/4, /*max_queue=*/8}, blocks);
  const auto now = Clock::now();
  GenerationRequest running = Spec(1, 10, 5), waiting = Spec(2, 10, 5);
  running.deadline = now + std::chrono::seconds(1);
  waiting.deadline = now + std::chrono::seconds(1);
  ASSERT_TRUE(s.Add(1, running).ok());
  Execute(s, s.Schedule(now));
  ASSERT_TRUE(s.Add(2, waiting).ok());
  const auto plan = s.Schedule(now + std::chrono::seconds(2));
  EXPECT_EQ(std::set<int64_t>(plan.expired.begin(), plan.expired.end()), (std::set<int64_t>{1, 2}));
  EXPECT_TRUE(plan.chunks.empty());
  EXPECT_EQ(blocks.num_free_blocks(), 16);
}

// Thousands of arrivals, cancellations, deadlines and completions: the pool is never overfilled,
// no block leaks, and every request ends exactly once.
TEST(Scheduler, RandomizedRunNeverLeaksAndEndsEachRequestOnce) {
  std::mt19937 rng(11);
  KvBlockManager blocks(48, 4);
  Scheduler s({/*prefill_block=*/32, /*max_running=*/6, /*max_queue=*/12}, blocks);
  auto now = Clock::now();
  std::map<int64_t, int> ends;  // id -> terminal events seen
  std::map<int64_t, int> max_new;
  std::set<int64_t> live;
  int64_t next_id = 1;
  for (int step = 0; step < 6000; ++step) {
    now += std::chrono::milliseconds(10);
    if (rng() % 3 == 0) {  // arrival
      GenerationRequest spec = Spec(next_id, 1 + rng() % 40, 1 + rng() % 30, rng() % 3);
      spec.use_prefix_cache = rng() % 2;
      if (rng() % 5 == 0) spec.deadline = now + std::chrono::milliseconds(rng() % 400);
      const int64_t id = next_id++;
      const int max_new_tokens = spec.stopping.max_new_tokens;
      if (s.Add(id, std::move(spec)).ok()) {
        live.insert(id);
        max_new[id] = max_new_tokens;
      } else {
        ++ends[id];  // refused: its one terminal status
      }
    }
    if (!live.empty() && rng() % 7 == 0) {  // cancellation
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      s.Remove(*it);
      ++ends[*it];
      live.erase(it);
    }
    const StepPlan plan = s.Schedule(now);
    for (int64_t id : plan.expired) {
      ASSERT_TRUE(live.count(id));
      ++ends[id];
      live.erase(id);
    }
    ASSERT_LE(plan.num_tokens, 32);
    ASSERT_LE(static_cast<int>(s.num_running()), 6);
    std::set<int64_t> in_plan;
    for (const auto& c : plan.chunks) {
      ASSERT_TRUE(in_plan.insert(c.seq_id).second) << "a sequence twice in one step";
      ASSERT_TRUE(live.count(c.seq_id));
      ASSERT_LE(c.start + c.num_tokens, static_cast<int64_t>(c.block_table->size()) * 4) << "chunk beyond its blocks";
    }
    Execute(s, plan);
    for (const auto& c : plan.chunks) {  // completion
      const int64_t id = c.seq_id;
      if (c.needs_logits && static_cast<int64_t>(s.tokens(id).size()) - s.prompt_length(id) >= max_new[id]) {
        s.Finish(id);
        ++ends[id];
        live.erase(id);
      }
    }
    ASSERT_LE(blocks.num_free_blocks(), 48);
  }
  for (int64_t id : std::vector<int64_t>(live.begin(), live.end())) {
    s.Remove(id);
    ++ends[id];
  }
  for (const auto& [id, count] : ends) ASSERT_EQ(count, 1) << "request " << id;
  EXPECT_EQ(static_cast<int64_t>(ends.size()), next_id - 1);
  EXPECT_EQ(blocks.num_free_blocks(), 48) << "every block came back";
  EXPECT_GT(s.num_preemptions(), 0) << "the run should exercise preemption";
}

}  // namespace
}  // namespace bpt

namespace bpt {
namespace {

// The tiers below the pool as the scheduler sees them, answered by the test.
struct FakeTierLink : KvTierLink {
  struct Probe {
    int64_t seq_id, matched, end;
  };
  int chunk = 16;
  std::vector<Probe> probes;
  std::map<int64_t, int64_t> loads;  // seq -> end asked
  int stores = 0;
  bool busy_first_chunk = false;
  int chunk_tokens() const override { return chunk; }
  ProbeStart StartProbe(int64_t seq_id, const std::string&, std::span<const int32_t>, int64_t matched,
                        int64_t end) override {
    if (busy_first_chunk) return ProbeStart::kWaitForOther;
    probes.push_back({seq_id, matched, end});
    return ProbeStart::kStarted;
  }
  void StartLoad(int64_t seq_id, int64_t end, const BlockTable&) override { loads[seq_id] = end; }
  void Store(int64_t, const std::string&, std::span<const int32_t>, int64_t, const BlockTable&, int64_t) override {
    ++stores;
  }
};

GenerationRequest CachedSpec(int64_t id, int prompt_length) {
  GenerationRequest s = Spec(id, prompt_length, 2);
  s.use_prefix_cache = true;
  return s;
}

TEST(SchedulerTiers, AProbeTakesNoBlockAndHoldsOnlyItsSequence) {
  KvBlockManager blocks(32, 8);
  Scheduler s({/*prefill_block=*/16, /*max_running=*/4, /*max_queue=*/8}, blocks);
  FakeTierLink link;
  s.SetTierLink(&link);
  const auto now = Clock::now();
  ASSERT_TRUE(s.Add(1, CachedSpec(1, 70)).ok());
  ASSERT_TRUE(s.Add(2, Spec(2, 5, 2)).ok());  // bypasses the cache: never probed
  StepPlan plan = s.Schedule(now);
  ASSERT_EQ(link.probes.size(), 1u);
  EXPECT_EQ(link.probes[0].matched, 0);
  EXPECT_EQ(link.probes[0].end, 64) << "whole chunks, leaving a token to compute";
  EXPECT_EQ(ChunkOf(plan, 1), nullptr) << "probing";
  ASSERT_NE(ChunkOf(plan, 2), nullptr) << "the one behind it runs";
  EXPECT_EQ(blocks.num_free_blocks(), 32 - 1) << "only sequence 2's block";
  Execute(s, plan);
  EXPECT_EQ(ChunkOf(s.Schedule(now), 1), nullptr) << "still probing";

  // The tiers hold 48 tokens: blocks are reserved for them, and the load starts.
  EXPECT_EQ(s.OnTierProbed(1, 48), 48);
  EXPECT_EQ(s.block_table(1).size(), 6u);
  EXPECT_EQ(ChunkOf(s.Schedule(now), 1), nullptr) << "loading";
  // Only 32 of them arrive (the third chunk was dropped): the rest of the reservation goes back.
  s.OnTierLoaded(1, 32);
  EXPECT_EQ(s.block_table(1).size(), 4u);
  EXPECT_EQ(s.cached_prompt_tokens(1), 32);
  EXPECT_EQ(s.pool_cached_tokens(1), 0);
  plan = s.Schedule(now);
  const ScheduledChunk* c = ChunkOf(plan, 1);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->start, 32) << "prefill starts after the loaded tokens";
  s.Remove(1);
  s.Remove(2);
  EXPECT_EQ(blocks.num_free_blocks(), 32);
  EXPECT_EQ(link.stores, 1) << "sequence 1's computed chunks are offered to the tiers";
}

TEST(SchedulerTiers, ARemovedLoadingSequenceFreesItsBlocksWhenTheLoadEnds) {
  KvBlockManager blocks(32, 8);
  Scheduler s({16, 4, 8}, blocks);
  FakeTierLink link;
  s.SetTierLink(&link);
  ASSERT_TRUE(s.Add(1, CachedSpec(1, 40)).ok());
  s.Schedule(Clock::now());
  ASSERT_EQ(s.OnTierProbed(1, 32), 32);
  s.Remove(1);  // cancelled while another thread writes into its blocks
  EXPECT_EQ(blocks.num_free_blocks(), 32 - 4) << "the loading blocks stay taken";
  s.OnTierLoaded(1, 32);
  EXPECT_EQ(blocks.num_free_blocks(), 32);
}

TEST(SchedulerTiers, ProbeAnsweredAfterRemovalLoadsNothing) {
  KvBlockManager blocks(32, 8);
  Scheduler s({16, 4, 8}, blocks);
  FakeTierLink link;
  s.SetTierLink(&link);
  ASSERT_TRUE(s.Add(1, CachedSpec(1, 40)).ok());
  s.Schedule(Clock::now());
  s.Remove(1);
  EXPECT_EQ(s.OnTierProbed(1, 32), 0);
  EXPECT_EQ(blocks.num_free_blocks(), 32);
}

TEST(SchedulerTiers, AShortPoolLoadsWhatFitsInWholeChunks) {
  KvBlockManager blocks(6, 8);  // 48 tokens
  Scheduler s({16, 4, 8}, blocks);
  FakeTierLink link;
  s.SetTierLink(&link);
  ASSERT_TRUE(s.Add(1, CachedSpec(1, 40)).ok());
  s.Schedule(Clock::now());
  EXPECT_EQ(s.OnTierProbed(1, 32), 32);
  s.OnTierLoaded(1, 32);
  ASSERT_TRUE(s.Add(2, CachedSpec(2, 40)).ok());
  s.Schedule(Clock::now());
  EXPECT_EQ(s.OnTierProbed(2, 32), 0) << "sequence 1 took 5 blocks: 1 free is not a whole chunk";
  EXPECT_EQ(blocks.num_free_blocks(), 1);
}

TEST(SchedulerTiers, WaitingForAnotherSequencesLoadMatchesItsBlocksAfterwards) {
  KvBlockManager blocks(32, 8);
  Scheduler s({16, 4, 8}, blocks);
  FakeTierLink link;
  s.SetTierLink(&link);
  GenerationRequest a = CachedSpec(1, 40), b = CachedSpec(1, 40);  // the same document
  ASSERT_TRUE(s.Add(1, a).ok());
  s.Schedule(Clock::now());
  ASSERT_EQ(s.OnTierProbed(1, 32), 32);
  link.busy_first_chunk = true;  // the link sees sequence 1 loading the first chunk
  ASSERT_TRUE(s.Add(2, b).ok());
  StepPlan plan = s.Schedule(Clock::now());
  EXPECT_EQ(ChunkOf(plan, 2), nullptr) << "waits for sequence 1's load";
  EXPECT_EQ(link.probes.size(), 1u);
  link.busy_first_chunk = false;
  s.OnTierLoaded(1, 32);
  plan = s.Schedule(Clock::now());
  EXPECT_EQ(s.cached_prompt_tokens(2), 32) << "the loaded blocks, matched in the pool";
  EXPECT_EQ(s.pool_cached_tokens(2), 32);
}

TEST(SchedulerTiers, APreemptionWritesNothingToTheTiers) {
  KvBlockManager blocks(6, 8);  // 48 tokens: two growing sequences cannot both fit
  Scheduler s({16, 4, 8}, blocks);
  FakeTierLink link;
  link.chunk = 64;  // longer than any prompt: never probed
  s.SetTierLink(&link);
  for (int64_t id : {1, 2}) {
    GenerationRequest r = Spec(id, 16, 30);
    r.use_prefix_cache = true;
    ASSERT_TRUE(s.Add(id, r).ok());
  }
  for (int step = 0; step < 60 && s.num_preemptions() == 0; ++step) {
    const StepPlan plan = s.Schedule(Clock::now());
    for (const auto& c : plan.chunks) {
      s.OnChunkComputed(c);
      if (c.needs_logits) s.AppendToken(c.seq_id, 7);
    }
  }
  ASSERT_GT(s.num_preemptions(), 0);
  EXPECT_EQ(link.stores, 0) << "a preemption frees blocks; a write would hold them";
  s.Remove(1);
  s.Remove(2);
  EXPECT_EQ(link.stores, 2);
}

TEST(SchedulerTiers, AProbeThatLoadsNothingEndsTheWaitOfOthers) {
  KvBlockManager blocks(32, 8);
  Scheduler s({/*prefill_block=*/64, 4, 8}, blocks);
  FakeTierLink link;
  s.SetTierLink(&link);
  ASSERT_TRUE(s.Add(1, CachedSpec(1, 40)).ok());
  s.Schedule(Clock::now());
  link.busy_first_chunk = true;
  ASSERT_TRUE(s.Add(2, CachedSpec(1, 40)).ok());
  EXPECT_EQ(ChunkOf(s.Schedule(Clock::now()), 2), nullptr) << "waits for sequence 1's probe";
  link.busy_first_chunk = false;
  EXPECT_EQ(s.OnTierProbed(1, 0), 0) << "the tiers hold nothing";
  const StepPlan plan = s.Schedule(Clock::now());
  EXPECT_NE(ChunkOf(plan, 1), nullptr);
  EXPECT_EQ(ChunkOf(plan, 2), nullptr) << "probes once more, itself";
  EXPECT_EQ(link.probes.size(), 2u);
}

}  // namespace
}  // namespace bpt
