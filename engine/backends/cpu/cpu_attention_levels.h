// The attention tile kernel's entry points, one namespace per instruction-set level
// (cpu_attention_<level>.cpp, all compiled from cpu_attention_kernels.inc). Plain pointers and
// PODs only: these files are built with wider -m flags than the rest of the engine.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bpt {

// Scratch holds query rows padded to a multiple of this (the widest level's vector); a kernel
// pads them to its own vector.
constexpr int kAttentionRowAlign = 16;
// Extra key rows past kv_tile: the scores kernel works on whole blocks of keys.
constexpr int kAttentionKeyPad = 8;

// One thread's scratch, allocated once by CpuAttention (for query_tile x GQA group rows rounded
// up to kAttentionRowAlign). rows_padded = the item's query rows (query tokens x GQA group)
// rounded up to the kernel's vector.
struct AttentionScratchView {
  float* queries_t;         // [head_dim, rows_padded]: the tile's queries, scaled, transposed
  float* probs_t;           // [kv_tile + kAttentionKeyPad, rows_padded]: scores, then exp(score - max), transposed
  float* out_t;             // [head_dim, rows_padded]: unnormalized output, transposed
  float* tile_max;          // [rows_padded]: each row's max score in the current tile
  float* row_max;           // [rows_padded]: running max of each row's scores
  float* row_sum;           // [rows_padded]: running sum of exp(score - max)
  float* correction;        // [rows_padded]: exp(old max - new max) of the current tile
  int32_t* causal_limit;    // [rows_padded]: a row sees key j of the tile when j <= causal_limit
  int32_t* window_limit;    // [rows_padded]: ... and j > window_limit
  float* keys_f32;          // [kv_tile, head_dim]: the tile's keys widened to fp32 (bf16 KV only)
  float* values_f32;        // [kv_tile, head_dim]: likewise its values
  const float** key_rows;   // [kv_tile + kAttentionKeyPad]: each key's fp32 row, in the pool or keys_f32
  const float** value_rows; // [kv_tile]
};

// One work item: query tokens [0, num_tokens) of one sequence (consecutive step rows) and the
// `group` query heads that share KV head kv_head, against that sequence's cached keys, or
// against the share of them in [split_begin, split_end) when a few items are split over the
// keys so that every thread has work (decode); a split item leaves its unnormalized output,
// running max and running sum in `partial` for CpuAttention to merge.
struct AttentionTileArgs {
  const float* q;             // first token's q; head h at q + h * head_dim, token t at q + t * q_stride
  int64_t q_stride;
  float* out;                 // [num_tokens, num_heads * head_dim] with row stride out_stride
  int64_t out_stride;
  const int64_t* positions;   // [num_tokens]
  int num_tokens;
  int group;
  int head_dim;
  int kv_head;
  int64_t sliding_window;     // 0: full causal
  const void* k;              // the layer's K: [num_slots, kv_dim], fp32 or bf16 (uint16_t)
  const void* v;              // the layer's V, likewise
  int64_t kv_dim;
  int block_size;
  const int32_t* block_table; // covers every position up to the tile's last
  int kv_tile;                // keys per online-softmax step
  int64_t split_begin;        // the item's keys: those its queries see within [split_begin, split_end)
  int64_t split_end;
  float* partial;             // nullptr: the normalized output goes to out; else [num_tokens * group, head_dim + 2]:
                              // row r = token r / group, head r % group of the KV head's group:
                              // unnormalized output, then running max, then running sum
  AttentionScratchView scratch;
};


#define BPT_DECLARE_ATTENTION_LEVEL(level)                   \
  namespace level {                                          \
  void AttentionTileF32(const AttentionTileArgs& args);      \
  void AttentionTileBf16(const AttentionTileArgs& args);     \
  }
BPT_DECLARE_ATTENTION_LEVEL(cpu_portable)
BPT_DECLARE_ATTENTION_LEVEL(cpu_avx2)
BPT_DECLARE_ATTENTION_LEVEL(cpu_avx512)
#undef BPT_DECLARE_ATTENTION_LEVEL

}  // namespace bpt
