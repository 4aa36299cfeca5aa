// The cuDNN attention plan is plain host code: every sequence's queries, keys and page table
// land where cuDNN's SDPA reads them, the padding is empty sequences that point at no row, and
// a step cuDNN's graphs cannot hold is refused. Runs without a GPU.
#include "cudnn_attention_plan.h"

#include <gtest/gtest.h>

#include <limits>
#include <numeric>
#include <random>

namespace bpt::cuda {
namespace {

// TinyLlama's heads: 32 query heads of 64 over 4 KV heads.
CudnnAttentionShape Shape() {
  CudnnAttentionShape s{};
  s.batch = 6;
  s.num_heads = 32;
  s.num_kv_heads = 4;
  s.head_dim = 64;
  s.block_size = 16;
  s.num_kv_blocks = 4096;
  s.table_width = 4096;
  s.prefill_block = 512;
  s.qkv_stride = (32 + 2 * 4) * 64;
  s.out_stride = 32 * 64;
  return s;
}

struct Planner {
  CudnnAttentionShape shape;
  std::vector<int32_t> seq_len_q, seq_len_kv, q_offsets, out_offsets, page_table;
  explicit Planner(const CudnnAttentionShape& s)
      : shape(s),
        seq_len_q(s.batch, -1),
        seq_len_kv(s.batch, -1),
        q_offsets(s.batch + 1, -1),
        out_offsets(s.batch + 1, -1),
        page_table(s.batch * s.table_width, -1) {}
  StatusOr<CudnnAttentionPlan> Plan(const StepLayout& step) {
    return PlanCudnnAttention(step, shape,
                              {seq_len_q.data(), seq_len_kv.data(), q_offsets.data(), out_offsets.data(), page_table.data()});
  }
};

BlockTable ShuffledTable(int64_t blocks, uint32_t seed) {
  BlockTable t(blocks);
  std::iota(t.begin(), t.end(), 0);
  std::shuffle(t.begin(), t.end(), std::mt19937(seed));
  return t;
}

// slices: (start_position, num_tokens); every table is two blocks longer than its slice needs.
StepLayout Step(const std::vector<std::pair<int64_t, int32_t>>& slices, std::vector<BlockTable>& tables, int bs) {
  StepLayout step;
  tables.clear();
  tables.reserve(slices.size());
  for (size_t i = 0; i < slices.size(); ++i)
    tables.push_back(ShuffledTable((slices[i].first + slices[i].second + bs - 1) / bs + 2, i + 1));
  for (size_t i = 0; i < slices.size(); ++i) {
    step.token_ids.insert(step.token_ids.end(), slices[i].second, 7);
    step.sequences.push_back({slices[i].first, slices[i].second, &tables[i], true});
  }
  return step;
}

TEST(CudnnAttentionPlan, MixedStepPutsEachSequenceWhereCudnnReadsIt) {
  Planner p(Shape());
  std::vector<BlockTable> tables;
  const StepLayout step = Step({{5000, 1}, {300, 77}, {0, 129}, {70, 1}}, tables, 16);
  auto plan = p.Plan(step);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_FALSE(plan->decode_only);
  EXPECT_EQ(plan->num_sequences, 4);
  EXPECT_EQ(plan->used_width, (5000 + 1 + 15) / 16);

  int64_t row = 0;
  for (size_t i = 0; i < step.sequences.size(); ++i) {
    const SequenceSlice& s = step.sequences[i];
    EXPECT_EQ(p.seq_len_q[i], s.num_tokens);
    // Bottom-right causal: the slice's last query sees every key up to its own position.
    EXPECT_EQ(p.seq_len_kv[i], s.start_position + s.num_tokens);
    EXPECT_EQ(p.q_offsets[i], row * p.shape.qkv_stride);
    EXPECT_EQ(p.out_offsets[i], row * p.shape.out_stride);
    const int64_t blocks = (s.start_position + s.num_tokens + 15) / 16;
    for (int64_t b = 0; b < blocks; ++b) EXPECT_EQ(p.page_table[i * p.shape.table_width + b], (*s.block_table)[b]);
    row += s.num_tokens;
  }
  // The padding: no queries, no keys, offsets at the end of the step's rows.
  for (int i = 4; i < p.shape.batch; ++i) {
    EXPECT_EQ(p.seq_len_q[i], 0);
    EXPECT_EQ(p.seq_len_kv[i], 0);
    EXPECT_EQ(p.q_offsets[i], row * p.shape.qkv_stride);
    EXPECT_EQ(p.out_offsets[i], row * p.shape.out_stride);
  }
  EXPECT_EQ(p.q_offsets[p.shape.batch], row * p.shape.qkv_stride);
  EXPECT_EQ(p.out_offsets[p.shape.batch], row * p.shape.out_stride);
  for (int i = 0; i < p.shape.batch; ++i) EXPECT_LE(p.q_offsets[i], p.q_offsets[i + 1]);
}

TEST(CudnnAttentionPlan, OneTokenPerSequenceAskingForLogitsIsTheDecodeGraph) {
  Planner p(Shape());
  std::vector<BlockTable> tables;
  auto decode = p.Plan(Step({{5000, 1}, {0, 1}, {70, 1}}, tables, 16));
  ASSERT_TRUE(decode.ok()) << decode.status().ToString();
  EXPECT_TRUE(decode->decode_only);
  EXPECT_EQ(p.seq_len_kv[1], 1);

  StepLayout no_logits = Step({{5000, 1}, {0, 1}}, tables, 16);
  no_logits.sequences[1].needs_logits = false;
  auto mixed = p.Plan(no_logits);
  ASSERT_TRUE(mixed.ok());
  EXPECT_FALSE(mixed->decode_only);
}

TEST(CudnnAttentionPlan, RefusesStepsTheGraphsCannotHold) {
  CudnnAttentionShape shape = Shape();
  shape.table_width = 8;  // 128 keys per sequence
  Planner p(shape);
  std::vector<BlockTable> tables;
  EXPECT_FALSE(p.Plan(Step({{127, 2}}, tables, 16)).ok()) << "129 keys in a 128-key page table";
  EXPECT_TRUE(p.Plan(Step({{126, 2}}, tables, 16)).ok());

  EXPECT_FALSE(p.Plan(Step({{0, 1}, {0, 1}, {0, 1}, {0, 1}, {0, 1}, {0, 1}, {0, 1}}, tables, 16)).ok())
      << "seven sequences in a batch of six";
  EXPECT_FALSE(p.Plan(Step({{0, 513}}, tables, 16)).ok()) << "more rows than prefill_block";

  StepLayout short_table = Step({{0, 40}}, tables, 16);
  tables[0].resize(2);
  EXPECT_FALSE(p.Plan(short_table).ok()) << "a block table that misses position 39";
}

TEST(CudnnAttentionPlan, ShapeCheckKeepsOffsetsAndPageIdsInInt32) {
  CudnnAttentionShape shape = Shape();
  EXPECT_TRUE(CheckCudnnAttentionShape(shape).ok());
  shape.prefill_block = std::numeric_limits<int32_t>::max() / shape.qkv_stride + 1;
  EXPECT_FALSE(CheckCudnnAttentionShape(shape).ok());
  shape = Shape();
  shape.table_width = (int64_t{1} << 31) / shape.block_size;
  EXPECT_FALSE(CheckCudnnAttentionShape(shape).ok()) << "2^31 keys per sequence";
  shape = Shape();
  shape.num_heads = 30;
  EXPECT_FALSE(CheckCudnnAttentionShape(shape).ok()) << "30 query heads over 4 KV heads";
}

}  // namespace
}  // namespace bpt::cuda
