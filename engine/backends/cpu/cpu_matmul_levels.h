// The entry points of the Linear/Embed kernels, compiled once per instruction-set level
// (cpu_matmul_<level>.cpp, each a namespace of its own) from cpu_matmul_kernels.inc. Plain
// functions on raw pointers and POD structs: this header is included by the kernel files, which
// must contain no standard-library code.
//
// Weights of more than one row are stored in panels: the output features split into panels of
// `panel_width` (zero-padded at the end), and within a panel the weights ordered by input index
// so that one vector load holds one input's weight for consecutive outputs:
//   fp32: [panels, in, panel_width]
//   bf16: [panels, ceil(in / 2), panel_width, 2]: inputs 2i and 2i+1 of one output share a
//         32-bit lane, AVX512-BF16's dot-product layout (zero-padded when `in` is odd).
#pragma once

#include <cstddef>
#include <cstdint>

namespace bpt {

// One work item of a Linear: rows [row_begin, row_end) of x against panels [panel_begin, panel_end).
struct LinearTask {
  const float* x;         // [rows, in], row stride x_stride
  const uint16_t* x_bf16;  // [rows, 2 * ceil(in / 2)]: x rounded to bf16, for linear_bf16_dot only
  int64_t x_stride;
  int64_t in;
  const void* panels;  // the packed weight: float or uint16_t, see above
  int64_t out_features;
  const float* bias;  // [out_features] or null
  float* out;         // [rows, out_features], row stride out_stride
  int64_t out_stride;
  int64_t row_begin, row_end;
  int64_t panel_begin, panel_end;
};

struct MatmulKernels {
  int panel_width;  // output features per panel
  int tile_rows;    // rows of x one register tile covers
  // panels: [ceil(rows / panel_width) * panel_width * in] from w: [rows, in]
  void (*pack_f32)(const float* w, int64_t rows, int64_t in, float* panels);
  // panels: [ceil(rows / panel_width) * panel_width * 2 * ceil(in / 2)], rounded to nearest even
  void (*pack_bf16)(const float* w, int64_t rows, int64_t in, uint16_t* panels);
  void (*linear_f32)(const LinearTask& task);
  void (*linear_bf16)(const LinearTask& task);  // x in fp32, the weights widened in registers
  // x_bf16 against the bf16 weights in _mm512_dpbf16_ps, register tiles as linear_bf16's; null
  // below AVX512-BF16.
  void (*linear_bf16_dot)(const LinearTask& task);
  // out[t] = row ids[t] of the packed table.  ids: [n]; out: [n, in], row stride out_stride
  void (*embed_f32)(const float* panels, int64_t in, const int32_t* ids, int64_t n, float* out, int64_t out_stride);
  void (*embed_bf16)(const uint16_t* panels, int64_t in, const int32_t* ids, int64_t n, float* out,
                     int64_t out_stride);
  // x_bf16: [rows, 2 * ceil(in / 2)] from x: [rows, in] (row stride x_stride), for
  // linear_bf16_dot; null with it.
  void (*round_x_bf16)(const float* x, int64_t rows, int64_t in, int64_t x_stride, uint16_t* x_bf16);
};

namespace cpu_portable {
MatmulKernels MatmulKernelTable();
}
namespace cpu_avx2 {
MatmulKernels MatmulKernelTable();
}
namespace cpu_avx512 {
MatmulKernels MatmulKernelTable();
}
namespace cpu_avx512bf16 {
MatmulKernels MatmulKernelTable();
}

}  // namespace bpt
