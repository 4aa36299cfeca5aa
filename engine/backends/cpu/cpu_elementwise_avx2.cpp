// The elementwise kernels for AVX2 + FMA.
#include <cstddef>
#include <cstdint>

#include "cpu_elementwise_levels.h"

#define BPT_SIMD_FLOATS 8

namespace bpt::cpu_avx2 {
#include "cpu_simd.inc"
#include "cpu_elementwise_kernels.inc"

ElementwiseKernels ElementwiseKernelTable() { return elementwise::Table(); }
}  // namespace bpt::cpu_avx2
