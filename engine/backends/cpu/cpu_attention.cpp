#include "cpu_attention.h"

#include <algorithm>

namespace bpt {
namespace {

using TileKernel = void (*)(const AttentionTileArgs&);

TileKernel SelectKernel(CpuIsa isa, ElementType kv_dtype) {
  const bool bf16 = kv_dtype == ElementType::kBFloat16;
  switch (isa) {
    case CpuIsa::kAvx512Bf16:
    case CpuIsa::kAvx512: return bf16 ? cpu_avx512::AttentionTileBf16 : cpu_avx512::AttentionTileF32;
    case CpuIsa::kAvx2: return bf16 ? cpu_avx2::AttentionTileBf16 : cpu_avx2::AttentionTileF32;
    default: return bf16 ? cpu_portable::AttentionTileBf16 : cpu_portable::AttentionTileF32;
  }
}

template <typename T>
int64_t VectorBytes(const std::vector<T>& v) {
  return static_cast<int64_t>(v.size() * sizeof(T));
}

}  // namespace

CpuAttention::CpuAttention(const AttentionShape& shape, AttentionTiling tiling, CpuIsa isa, ElementType kv_dtype,
                           int num_threads)
    : shape_(shape), tiling_(tiling), isa_(isa), kernel_(SelectKernel(isa, kv_dtype)), scratch_(num_threads) {
  const int group = shape_.num_heads / shape_.num_kv_heads;
  const size_t rows = (tiling_.query_tile * group + kAttentionRowAlign - 1) / kAttentionRowAlign * kAttentionRowAlign;
  const size_t d = shape_.head_dim, keys = tiling_.kv_tile + kAttentionKeyPad;
  for (auto& s : scratch_) {
    s.queries_t.resize(d * rows);
    s.probs_t.resize(keys * rows);
    s.out_t.resize(d * rows);
    s.tile_max.resize(rows);
    s.row_max.resize(rows);
    s.row_sum.resize(rows);
    s.correction.resize(rows);
    s.causal_limit.resize(rows);
    s.window_limit.resize(rows);
    s.key_rows.resize(keys);
    s.value_rows.resize(keys);
    if (kv_dtype == ElementType::kBFloat16) {
      s.keys_f32.resize(tiling_.kv_tile * d);
      s.values_f32.resize(tiling_.kv_tile * d);
    }
  }
}

AttentionScratchView CpuAttention::Scratch::view() {
  return {queries_t.data(),  probs_t.data(),      out_t.data(),        tile_max.data(),
          row_max.data(),    row_sum.data(),      correction.data(),   causal_limit.data(),
          window_limit.data(), keys_f32.data(),   values_f32.data(),   key_rows.data(),
          value_rows.data()};
}

int64_t CpuAttention::Scratch::bytes() const {
  return VectorBytes(queries_t) + VectorBytes(probs_t) + VectorBytes(out_t) + VectorBytes(tile_max) +
         VectorBytes(row_max) + VectorBytes(row_sum) + VectorBytes(correction) + VectorBytes(causal_limit) +
         VectorBytes(window_limit) + VectorBytes(keys_f32) + VectorBytes(values_f32) + VectorBytes(key_rows) +
         VectorBytes(value_rows);
}

int64_t CpuAttention::ScratchBytes() const {
  int64_t total = 0;
  for (const auto& s : scratch_) total += s.bytes();
  return total;
}

std::string CpuAttention::kernels_name() const {
  // The AVX512-BF16 level runs the AVX-512 attention kernels (cpu_attention.h says why).
  return std::string("cpu-") + CpuIsaName(isa_ == CpuIsa::kAvx512Bf16 ? CpuIsa::kAvx512 : isa_);
}

void CpuAttention::Run(const float* q, int64_t q_stride, const PagedKvLayer& kv,
                       const std::vector<SequenceSlice>& sequences, const int64_t* positions,
                       float* out, int64_t out_stride, ThreadPool& pool) {
  items_.clear();
  int64_t row = 0;
  for (const auto& seq : sequences) {
    for (int32_t t = 0; t < seq.num_tokens; t += tiling_.query_tile) {
      const int32_t n = std::min(tiling_.query_tile, seq.num_tokens - t);
      for (int g = 0; g < shape_.num_kv_heads; ++g) items_.push_back({row + t, n, g, seq.block_table});
    }
    row += seq.num_tokens;
  }
  // The call's inputs in one struct, so the job below captures two pointers and fits
  // std::function's inline buffer: no allocation per layer.
  struct Call {
    const float* q;
    int64_t q_stride;
    const PagedKvLayer& kv;
    const int64_t* positions;
    float* out;
    int64_t out_stride;
  } const call{q, q_stride, kv, positions, out, out_stride};
  // Larger tiles (later positions) first, so the slowest items do not start last.
  pool.ParallelFor(static_cast<int64_t>(items_.size()), [this, &call](int64_t i, int thread) {
    const WorkItem& item = items_[items_.size() - 1 - i];
    const AttentionTileArgs args{call.q + item.first_row * call.q_stride,
                                 call.q_stride,
                                 call.out + item.first_row * call.out_stride,
                                 call.out_stride,
                                 call.positions + item.first_row,
                                 item.num_tokens,
                                 shape_.num_heads / shape_.num_kv_heads,
                                 shape_.head_dim,
                                 item.kv_head,
                                 shape_.sliding_window,
                                 call.kv.k,
                                 call.kv.v,
                                 static_cast<int64_t>(shape_.num_kv_heads) * shape_.head_dim,
                                 call.kv.block_size,
                                 item.block_table->data(),
                                 tiling_.kv_tile,
                                 scratch_[thread].view()};
    kernel_(args);
  });
}

}  // namespace bpt
