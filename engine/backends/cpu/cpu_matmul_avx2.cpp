// The matmul kernels for AVX2 + FMA: a 6 x 16 tile fills 12 of the 16 registers.
#include <cstddef>
#include <cstdint>
#include <immintrin.h>

#include "cpu_matmul_levels.h"

#define BPT_SIMD_FLOATS 8
#define BPT_MATMUL_PANEL_VECTORS 2
#define BPT_MATMUL_TILE_ROWS 6
#define BPT_MATMUL_DPBF16 0

namespace bpt::cpu_avx2 {
#include "cpu_simd.inc"
#include "cpu_matmul_kernels.inc"

MatmulKernels MatmulKernelTable() { return matmul::Table(); }
}  // namespace bpt::cpu_avx2
