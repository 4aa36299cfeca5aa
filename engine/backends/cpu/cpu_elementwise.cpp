#include "cpu_elementwise.h"

namespace bpt {
namespace {

ElementwiseKernels KernelsFor(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Bf16:
    case CpuIsa::kAvx512: return cpu_avx512::ElementwiseKernelTable();
    case CpuIsa::kAvx2: return cpu_avx2::ElementwiseKernelTable();
    case CpuIsa::kPortable:
    case CpuIsa::kAuto: break;
  }
  return cpu_portable::ElementwiseKernelTable();
}

}  // namespace

CpuElementwise::CpuElementwise(CpuIsa isa) : kernels_(KernelsFor(isa)) {}

void CpuElementwise::SwiGlu(const Tensor& gate_up, Tensor out, ThreadPool& pool) const {
  struct Rows {
    const ElementwiseKernels& kernels;
    const Tensor& gate_up;
    Tensor& out;
  } rows{kernels_, gate_up, out};
  // One captured reference: std::function holds it without allocating.
  pool.ParallelFor(out.rows, [&rows](int64_t r, int) {
    const float* gate = static_cast<const float*>(rows.gate_up.data) + r * rows.gate_up.cols;
    rows.kernels.swiglu(gate, gate + rows.out.cols, rows.out.cols, static_cast<float*>(rows.out.data) + r * rows.out.cols);
  });
}

}  // namespace bpt
