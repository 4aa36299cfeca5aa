#include "cuda_attention_plan.h"

#include <algorithm>
#include <string>

namespace bpt::cuda {
namespace {

int64_t PowerOfTwoAtLeast(int64_t floor, int64_t value) {
  int64_t p = floor;
  while (p < value) p *= 2;
  return p;
}

// Enough splits for one sequence to cover the GPU about twice, none shorter than
// kMinSplitKeys, no more than kMaxDecodeSplits; split lengths and the grid are powers of two,
// so a growing context changes them (and needs another decode graph) rarely.
int PlanDecodeSplits(const AttentionPlanLimits& limits, const AttentionSequence* sequences, DecodeItem* items, int count) {
  const int64_t wanted = std::max<int64_t>(1, (2LL * limits.num_sms + limits.num_kv_heads - 1) / limits.num_kv_heads);
  int most_splits = 0;
  for (int i = 0; i < count; ++i) {
    DecodeItem& item = items[i];
    const int64_t span = sequences[item.sequence].start_position + 1 - item.key_begin;
    const int64_t needed =
        std::max({kMinSplitKeys, (span + wanted - 1) / wanted, (span + kMaxDecodeSplits - 1) / kMaxDecodeSplits});
    item.split_len = PowerOfTwoAtLeast(kMinSplitKeys, needed);
    item.num_splits = static_cast<int32_t>((span + item.split_len - 1) / item.split_len);
    most_splits = std::max(most_splits, item.num_splits);
  }
  return static_cast<int>(PowerOfTwoAtLeast(1, most_splits));
}

}  // namespace

StatusOr<AttentionPlan> PlanAttention(const StepLayout& step, const AttentionPlanLimits& limits, const AttentionPlanBuffers& out) {
  AttentionPlan plan;
  plan.num_tokens = step.num_tokens();
  const int num_sequences = static_cast<int>(step.sequences.size());
  if (plan.num_tokens > limits.prefill_block || num_sequences > limits.max_running)
    return Internal("step of " + std::to_string(plan.num_tokens) + " tokens in " + std::to_string(num_sequences) +
                    " sequences; the CUDA workspace holds " + std::to_string(limits.prefill_block) + " in " +
                    std::to_string(limits.max_running));
  int64_t covered = 0;
  for (const SequenceSlice& s : step.sequences) covered += s.num_tokens;
  if (covered != plan.num_tokens)
    return Internal("step sequences cover " + std::to_string(covered) + " of " + std::to_string(plan.num_tokens) +
                    " tokens");
  const int tile_tokens = PrefillTileTokens(limits.group);
  const int bs = limits.kv_block_size;
  int64_t row = 0;
  plan.decode_only = num_sequences > 0;
  for (int i = 0; i < num_sequences; ++i) {
    const SequenceSlice& s = step.sequences[i];
    if (s.num_tokens < 1) return Internal("step sequence " + std::to_string(i) + " has no tokens");
    const int64_t end = s.start_position + s.num_tokens;
    const int64_t blocks = (end + bs - 1) / bs;
    if (s.block_table == nullptr || static_cast<int64_t>(s.block_table->size()) < blocks)
      return Internal("block table does not cover position " + std::to_string(end - 1));
    if (blocks > limits.num_kv_blocks) return Internal("block table is longer than the KV pool");
    const BlockTable& table = *s.block_table;
    std::copy(table.begin(), table.begin() + blocks, out.block_tables + plan.block_table_entries);
    out.sequences[i] = {s.start_position, plan.block_table_entries, s.num_tokens, static_cast<int32_t>(row)};
    plan.block_table_entries += blocks;
    plan.decode_only = plan.decode_only && s.num_tokens == 1 && s.needs_logits;
    for (int32_t t = 0; t < s.num_tokens; ++t, ++row) {
      const int64_t pos = s.start_position + t;
      out.positions[row] = pos;
      out.slots[row] = static_cast<int64_t>(table[pos / bs]) * bs + pos % bs;
    }
    if (s.num_tokens == 1) {
      const int64_t key_begin = limits.sliding_window > 0 ? std::max<int64_t>(0, s.start_position - limits.sliding_window + 1) : 0;
      out.decode_items[plan.num_decode_items++] = {i, 0, key_begin, 0};
    } else {
      for (int32_t t0 = 0; t0 < s.num_tokens; t0 += tile_tokens)
        out.prefill_tiles[plan.num_prefill_tiles++] = {i, t0, std::min(tile_tokens, s.num_tokens - t0)};
    }
  }
  if (plan.num_decode_items > 0)
    plan.max_splits_in_step = PlanDecodeSplits(limits, out.sequences, out.decode_items, plan.num_decode_items);
  return plan;
}

}  // namespace bpt::cuda
