// The CUDA backend's step plan is plain host code: every token lands in exactly one tile or
// decode item, every key of a decoding sequence in exactly one split, and a sequence's split
// does not depend on the batch around it. Runs without a GPU.
#include "cuda_attention_plan.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>

namespace bpt::cuda {
namespace {

struct Planner {
  AttentionPlanLimits limits;
  std::vector<AttentionSequence> sequences;
  std::vector<PrefillTile> tiles;
  std::vector<DecodeItem> items;
  std::vector<int32_t> tables;
  std::vector<int64_t> slots, positions;

  explicit Planner(AttentionPlanLimits l)
      : limits(l),
        sequences(l.max_running),
        tiles(l.prefill_block),
        items(l.max_running),
        tables(l.max_running * l.num_kv_blocks),
        slots(l.prefill_block),
        positions(l.prefill_block) {}

  StatusOr<AttentionPlan> Plan(const StepLayout& step) {
    return PlanAttention(step, limits,
                    {sequences.data(), tiles.data(), items.data(), tables.data(), slots.data(), positions.data()});
  }
};

AttentionPlanLimits Limits() {
  // 132 SMs and 4 KV heads (an H100 and TinyLlama's GQA): a lone sequence wants 66 splits.
  return {/*kv_block_size=*/16, /*num_kv_blocks=*/1 << 18, /*prefill_block=*/2048, /*max_running=*/8,
          /*group=*/8, /*num_kv_heads=*/4, /*sliding_window=*/0, /*num_sms=*/132};
}

BlockTable ShuffledTable(int64_t blocks, uint32_t seed) {
  BlockTable t(blocks);
  std::iota(t.begin(), t.end(), 0);
  std::shuffle(t.begin(), t.end(), std::mt19937(seed));
  return t;
}

StepLayout Step(const std::vector<std::pair<int64_t, int32_t>>& slices, std::vector<BlockTable>& tables,
                int block_size) {
  StepLayout step;
  tables.clear();
  tables.reserve(slices.size());
  for (size_t i = 0; i < slices.size(); ++i)
    tables.push_back(ShuffledTable((slices[i].first + slices[i].second + block_size - 1) / block_size + 2, i + 1));
  for (size_t i = 0; i < slices.size(); ++i) {
    step.token_ids.insert(step.token_ids.end(), slices[i].second, 7);
    step.sequences.push_back({slices[i].first, slices[i].second, &tables[i], true});
  }
  return step;
}

TEST(CudaAttentionPlan, EveryTokenInOneTileOrDecodeItemWithItsSlot) {
  Planner p(Limits());
  std::vector<BlockTable> tables;
  const StepLayout step = Step({{5000, 1}, {300, 77}, {0, 129}, {70, 1}, {0, 2}}, tables, 16);
  auto plan = p.Plan(step);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->num_tokens, 210);
  EXPECT_FALSE(plan->decode_only);
  EXPECT_EQ(plan->num_decode_items, 2);

  std::vector<int> covered(plan->num_tokens, 0);
  for (int i = 0; i < plan->num_prefill_tiles; ++i) {
    const PrefillTile& t = p.tiles[i];
    const AttentionSequence& s = p.sequences[t.sequence];
    EXPECT_GE(t.num_tokens, 1);
    EXPECT_LE(t.num_tokens, PrefillTileTokens(p.limits.group));
    EXPECT_LE(t.first_token + t.num_tokens, s.num_tokens);
    for (int k = 0; k < t.num_tokens; ++k) ++covered[s.first_row + t.first_token + k];
  }
  for (int i = 0; i < plan->num_decode_items; ++i) {
    const AttentionSequence& s = p.sequences[p.items[i].sequence];
    EXPECT_EQ(s.num_tokens, 1);
    ++covered[s.first_row];
  }
  for (int64_t r = 0; r < plan->num_tokens; ++r) EXPECT_EQ(covered[r], 1) << "row " << r;

  for (size_t i = 0; i < step.sequences.size(); ++i) {
    const SequenceSlice& slice = step.sequences[i];
    const AttentionSequence& s = p.sequences[i];
    EXPECT_EQ(s.start_position, slice.start_position);
    for (int32_t t = 0; t < slice.num_tokens; ++t) {
      const int64_t pos = slice.start_position + t, row = s.first_row + t;
      EXPECT_EQ(p.positions[row], pos);
      EXPECT_EQ(p.slots[row], static_cast<int64_t>((*slice.block_table)[pos / 16]) * 16 + pos % 16);
      EXPECT_EQ(p.tables[s.block_table_offset + pos / 16], (*slice.block_table)[pos / 16]);
    }
  }
}

TEST(CudaAttentionPlan, DecodeSplitsCoverEveryKeyOnceWithinTheWorkspace) {
  Planner p(Limits());
  for (int64_t position : {0LL, 1LL, 255LL, 256LL, 4099LL, 16895LL, 16896LL, 131071LL, 1048576LL, 3000000LL}) {
    std::vector<BlockTable> tables;
    auto plan = p.Plan(Step({{position, 1}}, tables, 16));
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ASSERT_TRUE(plan->decode_only);
    const DecodeItem& item = p.items[0];
    EXPECT_EQ(item.key_begin, 0);
    EXPECT_GE(item.split_len, kMinSplitKeys);
    EXPECT_EQ(item.split_len & (item.split_len - 1), 0) << "a power of two";
    EXPECT_GE(item.num_splits, 1);
    EXPECT_LE(item.num_splits, kMaxDecodeSplits);
    EXPECT_LE(item.num_splits, plan->max_splits_in_step);
    EXPECT_LT(plan->max_splits_in_step, 2 * item.num_splits + 1);
    // Splits [begin + s * len, begin + (s + 1) * len) cut at the query: the last is non-empty.
    EXPECT_GE(item.num_splits * item.split_len, position + 1);
    EXPECT_LT((item.num_splits - 1) * item.split_len, position + 1);
  }
}

TEST(CudaAttentionPlan, ASequencesSplitDoesNotDependOnTheBatch) {
  Planner p(Limits());
  std::vector<BlockTable> tables;
  auto alone = p.Plan(Step({{100000, 1}}, tables, 16));
  ASSERT_TRUE(alone.ok());
  const DecodeItem lone = p.items[0];
  auto batched = p.Plan(Step({{7, 1}, {300000, 1}, {100000, 1}, {20, 40}}, tables, 16));
  ASSERT_TRUE(batched.ok());
  ASSERT_EQ(batched->num_decode_items, 3);
  const DecodeItem& in_batch = p.items[2];
  EXPECT_EQ(in_batch.split_len, lone.split_len);
  EXPECT_EQ(in_batch.num_splits, lone.num_splits);
}

TEST(CudaAttentionPlan, SlidingWindowStartsTheDecodeAtTheWindow) {
  AttentionPlanLimits limits = Limits();
  limits.sliding_window = 4096;
  Planner p(limits);
  std::vector<BlockTable> tables;
  auto plan = p.Plan(Step({{20000, 1}, {100, 1}}, tables, 16));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(p.items[0].key_begin, 20000 - 4096 + 1);
  EXPECT_GE(p.items[0].num_splits * p.items[0].split_len, 4096);
  EXPECT_EQ(p.items[1].key_begin, 0);
}

TEST(CudaAttentionPlan, MalformedStepsAreInternalErrors) {
  Planner p(Limits());
  std::vector<BlockTable> tables;
  StepLayout step = Step({{0, 40}}, tables, 16);
  tables[0].resize(2);  // covers 32 positions, the slice needs 40
  EXPECT_EQ(p.Plan(step).status().code(), StatusCode::kInternal);

  step = Step({{0, 40}}, tables, 16);
  step.token_ids.pop_back();  // the slices cover more tokens than the step has
  EXPECT_EQ(p.Plan(step).status().code(), StatusCode::kInternal);

  step = Step({{0, 2049}}, tables, 16);  // beyond prefill_block
  EXPECT_EQ(p.Plan(step).status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace bpt::cuda
