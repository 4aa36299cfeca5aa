// The matmul kernels for any x86-64 CPU (SSE2): 8-float vectors lowered to register pairs; 16 registers hold a 4 x 16 tile.
#include <cstddef>
#include <cstdint>

#include "cpu_matmul_levels.h"

#define BPT_SIMD_FLOATS 8
#define BPT_MATMUL_PANEL_VECTORS 2
#define BPT_MATMUL_TILE_ROWS 4
#define BPT_MATMUL_DPBF16 0

namespace bpt::cpu_portable {
#include "cpu_simd.inc"
#include "cpu_matmul_kernels.inc"

MatmulKernels MatmulKernelTable() { return matmul::Table(); }
}  // namespace bpt::cpu_portable
