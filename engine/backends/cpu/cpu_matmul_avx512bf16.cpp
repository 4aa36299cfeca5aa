// The matmul kernels for AVX-512 with AVX512-BF16: as AVX-512, and bf16 weights meet x rounded to bf16 in vdpbf16ps.
#include <cstddef>
#include <cstdint>
#include <immintrin.h>

#include "cpu_matmul_levels.h"

#define BPT_SIMD_FLOATS 16
#define BPT_MATMUL_PANEL_VECTORS 4
#define BPT_MATMUL_TILE_ROWS 6
#define BPT_MATMUL_DPBF16 1

namespace bpt::cpu_avx512bf16 {
#include "cpu_simd.inc"
#include "cpu_matmul_kernels.inc"

MatmulKernels MatmulKernelTable() { return matmul::Table(); }
}  // namespace bpt::cpu_avx512bf16
