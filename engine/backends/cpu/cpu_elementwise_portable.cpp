// The elementwise kernels for any x86-64 CPU (SSE2): 8-float vectors lowered to register pairs.
#include <cstddef>
#include <cstdint>

#include "cpu_elementwise_levels.h"

#define BPT_SIMD_FLOATS 8

namespace bpt::cpu_portable {
#include "cpu_simd.inc"
#include "cpu_elementwise_kernels.inc"

ElementwiseKernels ElementwiseKernelTable() { return elementwise::Table(); }
}  // namespace bpt::cpu_portable
