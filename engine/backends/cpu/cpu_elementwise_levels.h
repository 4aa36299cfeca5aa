// The entry points of the elementwise kernels, compiled once per instruction-set level
// (cpu_elementwise_<level>.cpp, each a namespace of its own) from cpu_elementwise_kernels.inc.
// Plain functions on raw pointers: the kernel files include this header and must contain no
// standard-library code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bpt {

struct ElementwiseKernels {
  // out = silu(gate) * up = gate / (1 + exp(-gate)) * up.  gate, up, out: [n]
  void (*swiglu)(const float* gate, const float* up, int64_t n, float* out);
};

namespace cpu_portable {
ElementwiseKernels ElementwiseKernelTable();
}
namespace cpu_avx2 {
ElementwiseKernels ElementwiseKernelTable();
}
namespace cpu_avx512 {
ElementwiseKernels ElementwiseKernelTable();
}

}  // namespace bpt
