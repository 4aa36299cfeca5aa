// Linear and Embed on the CPU, and the weight matrices they read: each matrix packed once at
// upload into output panels (cpu_matmul_levels.h) in fp32 or bf16, so a register tile of rows x
// outputs streams its panel once; the kernels are those of the instruction-set level chosen at
// construction.
#pragma once

#include <cstdint>
#include <vector>

#include "backend.h"
#include "cpu_matmul_levels.h"
#include "engine_options.h"
#include "status.h"
#include "thread_pool.h"

namespace bpt {

class CpuMatmul {
 public:
  // isa resolved (never kAuto); weight_dtype kFloat32 or kBFloat16. At AVX512-BF16, Linears of
  // up to bf16_dot_max_rows rows with bf16 weights round x to bf16 and run vdpbf16ps; more rows
  // widen the weights to fp32 in registers.
  CpuMatmul(CpuIsa isa, ElementType weight_dtype, int64_t bf16_dot_max_rows);
  // This CPU's best bf16_dot_max_rows: every row where vdpbf16ps outpaces FMA, else one.
  static int64_t Bf16DotMaxRows();
  ~CpuMatmul();
  CpuMatmul(const CpuMatmul&) = delete;
  CpuMatmul& operator=(const CpuMatmul&) = delete;

  // w: [rows, in] with rows > 1, consumed. The tensor's data is its panels (elem_bytes 4 or 2),
  // readable only by Linear and Embed below.
  StatusOr<Tensor> Pack(HostMatrix&& w);
  // Bytes of the packed weights held, padding to whole panels and pages included.
  int64_t WeightBytes() const { return weight_bytes_; }

  // out = x @ w^T (+ bias), threads splitting the output panels (and the rows, where the panels
  // are too few to share out).  x: [rows, in] fp32; w: a packed [out, in], or a row-major fp32
  // [1, in]; bias: [out] or null; out: [rows, out] fp32
  void Linear(const Tensor& x, const Tensor& w, const float* bias, Tensor out, ThreadPool& pool);
  // out[t] = row ids[t] of the table, widened to fp32.  table: as w above; ids: [out.rows]
  void Embed(const Tensor& table, const int32_t* ids, Tensor out) const;
  // Room for Linear's bf16-rounded copy of an input of up to [rows, in], where it makes one:
  // the backend reserves it for each activation it allocates, so no step allocates. Returns the
  // bytes added.
  int64_t ReserveInput(int64_t rows, int64_t in);

 private:
  // x_bf16_ = x rounded to bf16, rows shared out over the pool.
  void RoundInput(const Tensor& x, ThreadPool& pool);

  // A matrix's panels, mapped on their own: page-aligned, huge pages where the kernel gives them
  // (fewer TLB misses as decode streams the weights), and no heap between the host matrices
  // freed as they are packed, which the heap would otherwise keep resident.
  struct Mapping {
    void* data;
    size_t bytes;
  };

  const MatmulKernels kernels_;
  const ElementType weight_dtype_;
  const int64_t bf16_dot_max_rows_;
  std::vector<Mapping> panels_;
  int64_t weight_bytes_ = 0;
  // x rounded to bf16 for linear_bf16_dot: [rows, 2 * ceil(in / 2)], as ReserveInput sized it.
  std::vector<uint16_t> x_bf16_;
};

}  // namespace bpt
