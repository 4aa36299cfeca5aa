// The elementwise kernels for AVX-512 (AVX512-BF16 CPUs too: nothing here is bf16).
#include <cstddef>
#include <cstdint>

#include "cpu_elementwise_levels.h"

#define BPT_SIMD_FLOATS 16

namespace bpt::cpu_avx512 {
#include "cpu_simd.inc"
#include "cpu_elementwise_kernels.inc"

ElementwiseKernels ElementwiseKernelTable() { return elementwise::Table(); }
}  // namespace bpt::cpu_avx512
