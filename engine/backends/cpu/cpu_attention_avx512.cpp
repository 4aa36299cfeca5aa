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

void AttentionTileF32(const AttentionTileArgs& args) { AttentionTile<float>(args); }
void AttentionTileBf16(const AttentionTileArgs& args) { AttentionTile<uint16_t>(args); }

}  // namespace bpt::cpu_avx512
