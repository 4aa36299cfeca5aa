// How one forward step maps onto the CUDA attention kernels: the KV blocks each sequence reads,
// the cache slot of each token, the prefill tiles and the decode splits. Plain host code, so
// it is tested without a GPU (tests/cuda_attention_plan_test.cpp); engine/backends/cuda/cuda_backend.cu writes the
// plan straight into its pinned staging buffers and copies it to the device in one go.
#pragma once

#include <cstdint>

#include "backend.h"

namespace bpt::cuda {

// One sequence of the step, as the attention kernels read it.
struct AttentionSequence {
  int64_t start_position;      // position of the slice's first token
  int64_t block_table_offset;  // its block table's first entry in the step's concatenated tables
  int32_t num_tokens;          // tokens of the slice; keys cover [0, start_position + num_tokens)
  int32_t first_row;           // the step row of the slice's first token
};

// A prefill work item: up to kPrefillTileRows / group tokens of one sequence, for all query
// heads of one KV group (the grid's other dimension).
struct PrefillTile {
  int32_t sequence;
  int32_t first_token;  // within the slice
  int32_t num_tokens;
};

// A decode work item: the slice's one query over keys [key_begin, its position], split into
// num_splits ranges of split_len keys, one thread block each, combined afterwards. The split
// depends on the sequence alone, never on the rest of the batch, so a sequence decodes to the
// same bits batched or alone.
struct DecodeItem {
  int32_t sequence;
  int32_t num_splits;
  int64_t key_begin;
  int64_t split_len;
};

// Rows (query token x head of a KV group) held by one prefill thread block.
constexpr int kPrefillTileRows = 64;
inline int PrefillTileTokens(int group) { return kPrefillTileRows / group; }
// Split-KV partials kept per query head of a decoding sequence.
constexpr int kMaxDecodeSplits = 128;
// A split shorter than this spends more on its partial than on its keys.
constexpr int64_t kMinSplitKeys = 256;

struct AttentionPlanLimits {
  int kv_block_size;
  int64_t num_kv_blocks;
  int64_t prefill_block;
  int max_running;
  int group;               // query heads per KV head
  int num_kv_heads;
  int64_t sliding_window;  // 0: full causal
  int num_sms;             // the decode splits aim to cover the GPU twice
};

// Where the plan goes: arrays sized by the limits.
struct AttentionPlanBuffers {
  AttentionSequence* sequences;  // [max_running]
  PrefillTile* prefill_tiles;    // [prefill_block]: a tile holds at least one token
  DecodeItem* decode_items;      // [max_running]
  int32_t* block_tables;         // [max_running * num_kv_blocks]
  int64_t* slots;                // [prefill_block] block * block_size + offset
  int64_t* positions;            // [prefill_block]
};

struct AttentionPlan {
  int64_t num_tokens = 0;
  int num_prefill_tiles = 0;
  int num_decode_items = 0;
  int max_splits_in_step = 0;       // the decode grid: a power of two, at least every item's splits
  int64_t block_table_entries = 0;  // of the concatenated tables
  bool decode_only = false;         // every slice one token that asks for logits: a graph's shape
};

// Slices of one token take the decode path (split over keys); longer slices are cut into
// prefill tiles. Errors are Internal: the scheduler never makes such a step.
StatusOr<AttentionPlan> PlanAttention(const StepLayout& step, const AttentionPlanLimits& limits, const AttentionPlanBuffers& out);

}  // namespace bpt::cuda
