// The attention tile kernel for the AVX-512 level (see cpu_attention_kernels.inc); CMake compiles
// this file with the level's -m flags.
#include <cstddef>
#include <cstdint>
#include <immintrin.h>
#include "cpu_attention_levels.h"

namespace bpt::cpu_avx512 {

#define BPT_SIMD_FLOATS 16
#define BPT_ATTN_KEYS_PER_BLOCK 8
#define BPT_ATTN_DIMS_PER_BLOCK 8

#include "cpu_simd.inc"
#include "cpu_attention_kernels.inc"

// The same kernel on 8-lane (ymm) vectors, for items of at most 8 query rows: a decode token's
// GQA group (3, 4 or 8 heads) would leave most of a 16-lane vector idle.
namespace narrow {
#undef BPT_SIMD_FLOATS
#define BPT_SIMD_FLOATS 8
#include "cpu_simd.inc"
#include "cpu_attention_kernels.inc"
}  // namespace narrow

void AttentionTileF32(const AttentionTileArgs& args) {
  if (args.num_tokens * args.group <= narrow::kLanes) narrow::AttentionTile<float>(args);
  else AttentionTile<float>(args);
}
void AttentionTileBf16(const AttentionTileArgs& args) {
  if (args.num_tokens * args.group <= narrow::kLanes) narrow::AttentionTile<uint16_t>(args);
  else AttentionTile<uint16_t>(args);
}

}  // namespace bpt::cpu_avx512
