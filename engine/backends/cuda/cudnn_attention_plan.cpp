#include "cudnn_attention_plan.h"

#include <algorithm>
#include <limits>
#include <string>

namespace bpt::cuda {

Status CheckCudnnAttentionShape(const CudnnAttentionShape& shape) {
  if (shape.batch < 1 || shape.num_heads < 1 || shape.num_kv_heads < 1 || shape.head_dim < 1 ||
      shape.block_size < 1 || shape.num_kv_blocks < 1 || shape.table_width < 1 || shape.prefill_block < 1)
    return InvalidArgument("cuDNN attention: every size must be positive");
  if (shape.num_heads % shape.num_kv_heads != 0)
    return InvalidArgument("cuDNN attention: num_heads is not a multiple of num_kv_heads");
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  if (shape.prefill_block * std::max(shape.qkv_stride, shape.out_stride) > kInt32Max)
    return InvalidArgument("cuDNN attention: a step's rows exceed cuDNN's int32 ragged offsets");
  if (shape.num_kv_blocks > kInt32Max || shape.table_width * shape.block_size > kInt32Max)
    return InvalidArgument("cuDNN attention: the KV pool exceeds cuDNN's int32 page ids and key counts");
  return OkStatus();
}

StatusOr<CudnnAttentionPlan> PlanCudnnAttention(const StepLayout& step, const CudnnAttentionShape& shape,
                                                const CudnnAttentionBuffers& out) {
  CudnnAttentionPlan plan;
  plan.num_sequences = static_cast<int>(step.sequences.size());
  if (plan.num_sequences > shape.batch || step.num_tokens() > shape.prefill_block)
    return Internal("step of " + std::to_string(step.num_tokens()) + " tokens in " +
                    std::to_string(plan.num_sequences) + " sequences; cuDNN's graphs hold " +
                    std::to_string(shape.prefill_block) + " in " + std::to_string(shape.batch));
  const int bs = shape.block_size;
  int64_t row = 0;
  plan.decode_only = plan.num_sequences > 0;
  for (int i = 0; i < plan.num_sequences; ++i) {
    const SequenceSlice& s = step.sequences[i];
    if (s.num_tokens < 1) return Internal("step sequence " + std::to_string(i) + " has no tokens");
    const int64_t keys = s.start_position + s.num_tokens;
    const int64_t blocks = (keys + bs - 1) / bs;
    if (s.block_table == nullptr || static_cast<int64_t>(s.block_table->size()) < blocks)
      return Internal("block table does not cover position " + std::to_string(keys - 1));
    if (blocks > shape.table_width)
      return Internal("sequence " + std::to_string(i) + " holds " + std::to_string(keys) +
                      " keys; cuDNN's page tables hold " + std::to_string(shape.table_width * bs));
    std::copy(s.block_table->begin(), s.block_table->begin() + blocks, out.page_table + i * shape.table_width);
    plan.used_width = std::max(plan.used_width, blocks);
    out.seq_len_q[i] = s.num_tokens;
    out.seq_len_kv[i] = static_cast<int32_t>(keys);
    out.q_offsets[i] = static_cast<int32_t>(row * shape.qkv_stride);
    out.out_offsets[i] = static_cast<int32_t>(row * shape.out_stride);
    row += s.num_tokens;
    plan.decode_only = plan.decode_only && s.num_tokens == 1 && s.needs_logits;
  }
  if (row != step.num_tokens())
    return Internal("step sequences cover " + std::to_string(row) + " of " + std::to_string(step.num_tokens()) +
                    " tokens");
  // The padding: empty sequences starting where the last one ends, so the offsets never fall
  // outside the step's rows and never decrease.
  for (int i = plan.num_sequences; i < shape.batch; ++i) {
    out.seq_len_q[i] = 0;
    out.seq_len_kv[i] = 0;
    out.q_offsets[i] = static_cast<int32_t>(row * shape.qkv_stride);
    out.out_offsets[i] = static_cast<int32_t>(row * shape.out_stride);
  }
  out.q_offsets[shape.batch] = static_cast<int32_t>(row * shape.qkv_stride);
  out.out_offsets[shape.batch] = static_cast<int32_t>(row * shape.out_stride);
  return plan;
}

}  // namespace bpt::cuda
