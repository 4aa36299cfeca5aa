// The CPU backend's elementwise ops that are worth vectorising (a profile's say: SwiGlu's exp),
// with the kernels of the instruction-set level chosen at construction.
#pragma once

#include "backend.h"
#include "cpu_elementwise_levels.h"
#include "engine_options.h"
#include "thread_pool.h"

namespace bpt {

class CpuElementwise {
 public:
  explicit CpuElementwise(CpuIsa isa);  // isa resolved (never kAuto)

  // out = silu(gate) * up, threads splitting the rows.  gate_up: [rows, 2 * ffn] (gate columns
  // first); out: [rows, ffn]
  void SwiGlu(const Tensor& gate_up, Tensor out, ThreadPool& pool) const;

 private:
  const ElementwiseKernels kernels_;
};

}  // namespace bpt
