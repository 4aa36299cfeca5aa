// The matmul kernels for AVX-512: a 6 x 64 tile fills 24 of the 32 registers; bf16 weights widened in registers.
#include <cstddef>
#include <cstdint>
#include <immintrin.h>

#include "cpu_matmul_levels.h"

#define BPT_SIMD_FLOATS 16
#define BPT_MATMUL_PANEL_VECTORS 4
#define BPT_MATMUL_TILE_ROWS 6
#define BPT_MATMUL_DPBF16 0

namespace bpt::cpu_avx512 {
#include "cpu_simd.inc"
#include "cpu_matmul_kernels.inc"

MatmulKernels MatmulKernelTable() { return matmul::Table(); }
}  // namespace bpt::cpu_avx512
