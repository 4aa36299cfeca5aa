#include "cpu_matmul.h"

#include "cpu_isa.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace bpt {
namespace {

MatmulKernels KernelsFor(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Bf16: return cpu_avx512bf16::MatmulKernelTable();
    case CpuIsa::kAvx512: return cpu_avx512::MatmulKernelTable();
    case CpuIsa::kAvx2: return cpu_avx2::MatmulKernelTable();
    case CpuIsa::kPortable:
    case CpuIsa::kAuto: break;
  }
  return cpu_portable::MatmulKernelTable();
}

const float* F(const Tensor& t) { return static_cast<const float*>(t.data); }

// A Linear's work items: output panels times chunks of rows.
struct LinearSplit {
  LinearTask task;  // the whole call; each item narrows the rows and panels
  int64_t row_chunks;
  int64_t chunk_rows;
  void (*kernel)(const LinearTask&);
};

}  // namespace

CpuMatmul::CpuMatmul(CpuIsa isa, ElementType weight_dtype, int64_t bf16_dot_max_rows)
    : kernels_(KernelsFor(isa)), weight_dtype_(weight_dtype), bf16_dot_max_rows_(bf16_dot_max_rows) {}

int64_t CpuMatmul::Bf16DotMaxRows() {
  // Where vdpbf16ps is slower than FMA per multiply-add, one row still gains from it: bound by
  // memory, it reads the weights 5-15 % faster with half the instructions (measured on a
  // Sapphire Rapids-class Xeon, where 6 x 64 tiles widened to fp32 ran at 140-148 GFLOP/s
  // against vdpbf16ps's 86).
  return CpuBf16DotOutpacesFma() ? INT64_MAX : 1;
}

CpuMatmul::~CpuMatmul() {
  for (const Mapping& m : panels_) munmap(m.data, m.bytes);
}

StatusOr<Tensor> CpuMatmul::Pack(HostMatrix&& w) {
  const HostMatrix host = std::move(w);  // freed on return: one matrix at a time in host fp32
  const int64_t width = kernels_.panel_width;
  const int64_t padded_rows = (host.rows + width - 1) / width * width;
  const bool bf16 = weight_dtype_ == ElementType::kBFloat16;
  const int elem_bytes = bf16 ? 2 : 4;
  const int64_t padded_in = bf16 ? (host.cols + 1) / 2 * 2 : host.cols;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t bytes = (static_cast<size_t>(padded_rows * padded_in * elem_bytes) + page - 1) / page * page;
  void* panels = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (panels == MAP_FAILED)
    return ResourceExhausted("cannot map " + std::to_string(bytes) + " bytes for a [" + std::to_string(host.rows) +
                             ", " + std::to_string(host.cols) + "] weight");
  panels_.push_back({panels, bytes});
  madvise(panels, bytes, MADV_HUGEPAGE);  // a hint: without huge pages the weights work as well
  if (bf16) {
    kernels_.pack_bf16(host.data.data(), host.rows, host.cols, static_cast<uint16_t*>(panels));
  } else {
    kernels_.pack_f32(host.data.data(), host.rows, host.cols, static_cast<float*>(panels));
  }
  weight_bytes_ += static_cast<int64_t>(bytes);
  return Tensor{panels, host.rows, host.cols, elem_bytes};
}

void CpuMatmul::Linear(const Tensor& x, const Tensor& w, const float* bias, Tensor out, ThreadPool& pool) {
  const int64_t rows = x.rows, in = x.cols;
  float* o = static_cast<float*>(out.data);
  if (w.rows == 1) {  // a single output: the weight is a row-major vector, never packed
    for (int64_t r = 0; r < rows; ++r) {
      float sum = bias != nullptr ? bias[0] : 0.0f;
      for (int64_t k = 0; k < in; ++k) sum += F(x)[r * in + k] * F(w)[k];
      o[r * out.cols] = sum;
    }
    return;
  }
  const bool bf16 = w.elem_bytes == 2;
  LinearSplit split{};
  split.task = {F(x), nullptr, in, in, w.data, w.rows, bias, o, out.cols, 0, rows, 0, 0};
  split.kernel = bf16 ? kernels_.linear_bf16 : kernels_.linear_f32;
  if (bf16 && kernels_.linear_bf16_dot != nullptr && rows <= bf16_dot_max_rows_) {
    split.kernel = kernels_.linear_bf16_dot;
    ReserveInput(rows, in);
    RoundInput(x, pool);
    split.task.x_bf16 = x_bf16_.data();
  }
  // Panels alone where they are many; with few (prefill's 576- and 960-wide outputs: 9 and 15
  // panels) rows are split too, in whole tiles, so that each thread has 8 items or more and the
  // last one to finish waits little (2 threads, 256 x 576 -> 576: 294-305 GFLOP/s with 4, 332
  // with 8). Decode's single tile of rows leaves the panels alone to share out.
  const int64_t panels = (w.rows + kernels_.panel_width - 1) / kernels_.panel_width;
  const int64_t tiles = (rows + kernels_.tile_rows - 1) / kernels_.tile_rows;
  const int64_t wanted = 8 * static_cast<int64_t>(pool.num_threads());
  int64_t row_chunks = panels >= wanted ? 1 : (wanted + panels - 1) / panels;
  if (row_chunks > tiles) row_chunks = tiles;
  split.chunk_rows = (tiles + row_chunks - 1) / row_chunks * kernels_.tile_rows;
  split.row_chunks = (rows + split.chunk_rows - 1) / split.chunk_rows;
  // One captured reference: std::function holds it without allocating.
  pool.ParallelFor(panels * split.row_chunks, [&split](int64_t item, int) {
    LinearTask t = split.task;
    t.panel_begin = item / split.row_chunks;
    t.panel_end = t.panel_begin + 1;
    t.row_begin = item % split.row_chunks * split.chunk_rows;
    t.row_end = t.row_begin + split.chunk_rows < split.task.row_end ? t.row_begin + split.chunk_rows : split.task.row_end;
    split.kernel(t);
  });
}

int64_t CpuMatmul::ReserveInput(int64_t rows, int64_t in) {
  if (weight_dtype_ != ElementType::kBFloat16 || kernels_.linear_bf16_dot == nullptr) return 0;
  const size_t needed = static_cast<size_t>(std::min(rows, bf16_dot_max_rows_) * ((in + 1) / 2 * 2));
  if (x_bf16_.size() >= needed) return 0;
  const int64_t added = static_cast<int64_t>((needed - x_bf16_.size()) * sizeof(uint16_t));
  x_bf16_.resize(needed);
  return added;
}

void CpuMatmul::RoundInput(const Tensor& x, ThreadPool& pool) {
  const int64_t rows = x.rows, in = x.cols;
  if (rows == 1) {  // decode: not worth a job
    kernels_.round_x_bf16(F(x), 1, in, in, x_bf16_.data());
    return;
  }
  // Shared out like the product, in one chunk of rows per thread; one captured pointer, which
  // std::function holds without allocating.
  struct Rounding {
    const MatmulKernels& kernels;
    const float* x;
    int64_t rows, in, chunk;
    uint16_t* x_bf16;
  } const job{kernels_, F(x), rows, in, (rows + pool.num_threads() - 1) / pool.num_threads(), x_bf16_.data()};
  pool.ParallelFor((rows + job.chunk - 1) / job.chunk, [&job](int64_t c, int) {
    const int64_t r0 = c * job.chunk;
    job.kernels.round_x_bf16(job.x + r0 * job.in, std::min(job.chunk, job.rows - r0), job.in, job.in,
                             job.x_bf16 + r0 * ((job.in + 1) / 2 * 2));
  });
}

void CpuMatmul::Embed(const Tensor& table, const int32_t* ids, Tensor out) const {
  float* o = static_cast<float*>(out.data);
  if (table.rows == 1) {  // row-major: every id is 0
    for (int64_t t = 0; t < out.rows; ++t) std::memcpy(o + t * out.cols, table.data, table.cols * sizeof(float));
  } else if (table.elem_bytes == 2) {
    kernels_.embed_bf16(static_cast<const uint16_t*>(table.data), table.cols, ids, out.rows, o, out.cols);
  } else {
    kernels_.embed_f32(F(table), table.cols, ids, out.rows, o, out.cols);
  }
}

}  // namespace bpt
