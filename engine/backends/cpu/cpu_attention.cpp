#include "cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

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

// Splitting over keys starts when a step has fewer items than this per thread (one decode
// token of a 3-KV-head model has 3); shares are whole KV tiles, at least this many but the last.
constexpr int64_t kItemsPerThread = 4;
constexpr int64_t kMinTilesPerSplit = 2;
// Only items of up to this many query tokens are split (decode, a few speculative tokens, a
// short last prefill block), which bounds each share's partial output.
constexpr int32_t kMaxSplitTokens = 8;

template <typename T>
int64_t VectorBytes(const std::vector<T>& v) {
  return static_cast<int64_t>(v.size() * sizeof(T));
}

}  // namespace

CpuAttention::CpuAttention(const AttentionShape& shape, AttentionTiling tiling, CpuIsa isa, ElementType kv_dtype,
                           int num_threads)
    : shape_(shape), tiling_(tiling), isa_(isa), kernel_(SelectKernel(isa, kv_dtype)), scratch_(num_threads) {
  const int group = shape_.num_heads / shape_.num_kv_heads;
  partial_slot_floats_ = static_cast<int64_t>(std::min(tiling_.query_tile, kMaxSplitTokens)) * group * (shape_.head_dim + 2);
  // SplitItemsOverKeys makes at most natural * ceil(wanted / natural) < 2 * wanted shares.
  partials_.resize(2 * kItemsPerThread * num_threads * partial_slot_floats_);
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
  int64_t total = VectorBytes(partials_);
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
  SplitItemsOverKeys(positions);
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
                                 item.split_begin,
                                 item.split_end,
                                 item.partial < 0 ? nullptr : partials_.data() + item.partial * partial_slot_floats_,
                                 scratch_[thread].view()};
    kernel_(args);
  });
  if (!split_items_.empty()) MergeSplits(out, out_stride);
}

void CpuAttention::SplitItemsOverKeys(const int64_t* positions) {
  split_items_.clear();
  const int64_t threads = static_cast<int64_t>(scratch_.size());
  const int64_t wanted = kItemsPerThread * threads;
  const int64_t natural = static_cast<int64_t>(items_.size());
  if (threads < 2 || natural == 0 || natural >= wanted) return;
  const int64_t splits_wanted = (wanted + natural - 1) / natural;
  const int64_t min_keys = kMinTilesPerSplit * tiling_.kv_tile;
  const int64_t window = shape_.sliding_window;
  size_t kept = 0;
  int32_t slots = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    WorkItem item = items_[i];
    const int64_t first = positions[item.first_row];
    const int64_t last = positions[item.first_row + item.num_tokens - 1];
    const int64_t key_begin = window > 0 ? std::max<int64_t>(0, first - window + 1) : 0;
    const int64_t keys = last + 1 - key_begin;
    const int64_t splits = item.num_tokens <= kMaxSplitTokens ? std::min(splits_wanted, keys / min_keys) : 1;
    if (splits < 2) {
      items_[kept++] = item;
      continue;
    }
    // Shares of whole KV tiles; rounding up can leave fewer shares than asked for.
    const int64_t tiles = (keys + tiling_.kv_tile - 1) / tiling_.kv_tile;
    const int64_t per_split = (tiles + splits - 1) / splits * tiling_.kv_tile;
    const int32_t shares = static_cast<int32_t>((keys + per_split - 1) / per_split);
    item.partial = slots;
    split_items_.push_back({item, key_begin, per_split, shares});
    slots += shares;
  }
  items_.resize(kept);
  for (const SplitItem& split : split_items_) {
    for (int32_t s = 0; s < split.splits; ++s) {
      WorkItem share = split.item;
      share.split_begin = split.key_begin + s * split.keys_per_split;
      share.split_end = share.split_begin + split.keys_per_split;
      share.partial = split.item.partial + s;
      items_.push_back(share);
    }
  }
}

void CpuAttention::MergeSplits(float* out, int64_t out_stride) const {
  const int group = shape_.num_heads / shape_.num_kv_heads;
  const int d = shape_.head_dim;
  for (const SplitItem& split : split_items_) {
    const WorkItem& item = split.item;
    const float* first_share = partials_.data() + item.partial * partial_slot_floats_;
    for (int r = 0; r < item.num_tokens * group; ++r) {
      // The AttentionTileArgs::partial row of share s.
      auto share_row = [&](int32_t s) { return first_share + s * partial_slot_floats_ + static_cast<int64_t>(r) * (d + 2); };
      float max = -std::numeric_limits<float>::infinity();
      for (int32_t s = 0; s < split.splits; ++s) max = std::max(max, share_row(s)[d]);
      float* o = out + (item.first_row + r / group) * out_stride + static_cast<int64_t>(item.kv_head * group + r % group) * d;
      std::fill_n(o, d, 0.0f);
      float sum = 0;
      for (int32_t s = 0; s < split.splits; ++s) {
        const float* p = share_row(s);
        // max is finite (every row sees its own key); a share with every key masked for this
        // row has max -inf and so weight exp(-inf) = 0.
        const float weight = std::exp(p[d] - max);
        sum += weight * p[d + 1];
        for (int i = 0; i < d; ++i) o[i] += weight * p[i];
      }
      const float inv = 1.0f / sum;
      for (int i = 0; i < d; ++i) o[i] *= inv;
    }
  }
}

}  // namespace bpt
