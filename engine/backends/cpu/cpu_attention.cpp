#include "cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace bpt {
namespace {

// Eight floats in a vector register: AVX in the x86-64-v3 clone, two SSE registers otherwise.
typedef float F8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

inline F8 Load8(const float* p) {
  F8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store8(float* p, F8 v) { std::memcpy(p, &v, sizeof(v)); }
inline F8 Splat8(float x) { return F8{x, x, x, x, x, x, x, x}; }

// expf for the softmax, eight at a time (libm's expf is a call per element and dominated the
// kernel): Cody-Waite range reduction to [-ln2/2, ln2/2], Cephes' degree-6 polynomial, then
// scaling by 2^n through the exponent bits. Within 2 ulp of expf; exactly 0 below -87, where
// expf is subnormal or 0, so masked scores (-inf) weigh nothing.
inline F8 Exp8(F8 x) {
  const F8 low = x < Splat8(-87.0f) ? Splat8(-87.0f) : x;
  const F8 clamped = low > Splat8(88.0f) ? Splat8(88.0f) : low;
  const F8 round_bias = Splat8(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const F8 n = (clamped * 1.44269504088896341f + round_bias) - round_bias;
  const F8 r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  F8 p = Splat8(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const I8 bits = (__builtin_convertvector(n, I8) + 127) << 23;
  F8 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const F8 result = p * scale;
  return x < Splat8(-87.0f) ? Splat8(0.0f) : result;
}

// Max with eight independent lanes (a plain max reduction does not vectorize).
inline float Max(const float* x, int n) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  F8 m8 = Splat8(neg_inf);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const F8 v = Load8(x + j);
    m8 = v > m8 ? v : m8;
  }
  float m = neg_inf;
  for (int l = 0; l < 8; ++l) m = m8[l] > m ? m8[l] : m;
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// x[0, n) = exp(x - shift); returns their sum.
inline float ExpShiftedAndSum(float* x, int n, float shift) {
  F8 sum8 = Splat8(0.0f);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const F8 e = Exp8(Load8(x + j) - shift);
    Store8(x + j, e);
    sum8 += e;
  }
  if (j < n) {  // the tail through a padded register, so every value takes the same path
    float pad[8];
    for (int l = 0; l < 8; ++l) pad[l] = j + l < n ? x[j + l] - shift : -std::numeric_limits<float>::infinity();
    const F8 e = Exp8(Load8(pad));
    for (int l = 0; j + l < n; ++l) x[j + l] = e[l];
    sum8 += e;
  }
  float sum = 0;
  for (int l = 0; l < 8; ++l) sum += sum8[l];
  return sum;
}

// scores[0, n) = q[0, d) @ keys_t[0, d)[0, n), keys_t with row stride `stride`: one register
// per eight keys accumulates over the head dimension.
inline void Scores(const float* q, const float* keys_t, int64_t stride, int n, int d, float* scores) {
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    F8 a0 = Splat8(0.0f), a1 = Splat8(0.0f);
    for (int i = 0; i < d; ++i) {
      const F8 qi = Splat8(q[i]);
      a0 += qi * Load8(keys_t + i * stride + j);
      a1 += qi * Load8(keys_t + i * stride + j + 8);
    }
    Store8(scores + j, a0);
    Store8(scores + j + 8, a1);
  }
  for (; j < n; ++j) {
    float a = 0;
    for (int i = 0; i < d; ++i) a += q[i] * keys_t[i * stride + j];
    scores[j] = a;
  }
}

// acc[0, d) += sum_j p[j] * values[j][0, d): up to 32 columns held in registers across all
// keys, so acc is read and written once per tile.
inline void AccumulateValues(const float* p, const float* const* values, int n_keys, float* acc, int d) {
  int i0 = 0;
  for (; i0 + 32 <= d; i0 += 32) {
    F8 a0 = Load8(acc + i0), a1 = Load8(acc + i0 + 8), a2 = Load8(acc + i0 + 16), a3 = Load8(acc + i0 + 24);
    for (int j = 0; j < n_keys; ++j) {
      const F8 pj = Splat8(p[j]);
      const float* v = values[j] + i0;
      a0 += pj * Load8(v);
      a1 += pj * Load8(v + 8);
      a2 += pj * Load8(v + 16);
      a3 += pj * Load8(v + 24);
    }
    Store8(acc + i0, a0);
    Store8(acc + i0 + 8, a1);
    Store8(acc + i0 + 16, a2);
    Store8(acc + i0 + 24, a3);
  }
  for (; i0 + 8 <= d; i0 += 8) {
    F8 a = Load8(acc + i0);
    for (int j = 0; j < n_keys; ++j) a += Splat8(p[j]) * Load8(values[j] + i0);
    Store8(acc + i0, a);
  }
  for (; i0 < d; ++i0)
    for (int j = 0; j < n_keys; ++j) acc[i0] += p[j] * values[j][i0];
}

}  // namespace

CpuAttention::CpuAttention(const AttentionShape& shape, AttentionTiling tiling, int num_threads)
    : shape_(shape), tiling_(tiling), scratch_(num_threads) {
  const int rows = tiling_.query_tile * (shape_.num_heads / shape_.num_kv_heads);
  for (auto& s : scratch_) {
    s.queries.resize(static_cast<size_t>(rows) * shape_.head_dim);
    s.keys_t.resize(static_cast<size_t>(shape_.head_dim) * tiling_.kv_tile);
    s.values.resize(tiling_.kv_tile);
    s.scores.resize(static_cast<size_t>(rows) * tiling_.kv_tile);
    s.acc.resize(static_cast<size_t>(rows) * shape_.head_dim);
    s.max.resize(rows);
    s.sum.resize(rows);
  }
}

int64_t CpuAttention::ScratchBytes() const {
  int64_t total = 0;
  for (const auto& s : scratch_)
    total += (s.queries.size() + s.keys_t.size() + s.scores.size() + s.acc.size() + s.max.size() + s.sum.size()) *
                 sizeof(float) +
             s.values.size() * sizeof(const float*);
  return total;
}

// x86-64-v3 (AVX2 + FMA) is chosen by ISA level at load time, so any vendor's CPU gets it.
__attribute__((target_clones("arch=x86-64-v3", "default")))
void CpuAttention::RunTile(const WorkItem& item, const float* q, int64_t q_stride,
                           const PagedKvLayer& kv, const int64_t* positions, float* out,
                           int64_t out_stride, Scratch& s) const {
  const int d = shape_.head_dim;
  const int group = shape_.num_heads / shape_.num_kv_heads;
  const int rows = item.num_tokens * group;  // row r: token r / group, head kv_head * group + r % group
  const int64_t kv_dim = static_cast<int64_t>(shape_.num_kv_heads) * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t window = shape_.sliding_window;
  const int kv_tile = tiling_.kv_tile;

  for (int r = 0; r < rows; ++r) {
    const float* src = q + (item.first_row + r / group) * q_stride + (item.kv_head * group + r % group) * d;
    for (int i = 0; i < d; ++i) s.queries[static_cast<size_t>(r) * d + i] = src[i] * scale;
  }
  std::fill(s.acc.begin(), s.acc.begin() + static_cast<size_t>(rows) * d, 0.0f);
  std::fill(s.max.begin(), s.max.begin() + rows, neg_inf);
  std::fill(s.sum.begin(), s.sum.begin() + rows, 0.0f);

  const int64_t first_pos = positions[item.first_row];
  const int64_t last_pos = positions[item.first_row + item.num_tokens - 1];
  const int64_t key_begin = window > 0 ? std::max<int64_t>(0, first_pos - window + 1) : 0;
  const int64_t key_end = last_pos + 1;

  for (int64_t k0 = key_begin; k0 < key_end; k0 += kv_tile) {
    const int n_keys = static_cast<int>(std::min<int64_t>(kv_tile, key_end - k0));
    // Gather the tile through the block table: keys transposed, values by pointer.
    for (int j = 0; j < n_keys; ++j) {
      const int64_t key_pos = k0 + j;
      const int64_t slot = static_cast<int64_t>((*item.block_table)[key_pos / kv.block_size]) * kv.block_size +
                           key_pos % kv.block_size;
      const float* k = kv.k + slot * kv_dim + static_cast<int64_t>(item.kv_head) * d;
      for (int i = 0; i < d; ++i) s.keys_t[static_cast<size_t>(i) * kv_tile + j] = k[i];
      s.values[j] = kv.v + slot * kv_dim + static_cast<int64_t>(item.kv_head) * d;
    }
    for (int r = 0; r < rows; ++r)
      Scores(&s.queries[static_cast<size_t>(r) * d], s.keys_t.data(), kv_tile, n_keys, d,
             &s.scores[static_cast<size_t>(r) * kv_tile]);
    // Only tiles that reach past the first query, or behind a sliding window, need a mask.
    const bool crosses_diagonal = k0 + n_keys - 1 > first_pos;
    const bool crosses_window = window > 0 && k0 <= last_pos - window;
    if (crosses_diagonal || crosses_window) {
      for (int r = 0; r < rows; ++r) {
        const int64_t q_pos = positions[item.first_row + r / group];
        float* sr = &s.scores[static_cast<size_t>(r) * kv_tile];
        for (int j = 0; j < n_keys; ++j) {
          const int64_t key_pos = k0 + j;
          if (key_pos > q_pos || (window > 0 && key_pos <= q_pos - window)) sr[j] = neg_inf;
        }
      }
    }
    // Online softmax: rescale what was accumulated to the new running maximum.
    for (int r = 0; r < rows; ++r) {
      float* sr = &s.scores[static_cast<size_t>(r) * kv_tile];
      const float tile_max = Max(sr, n_keys);
      if (tile_max == neg_inf) {  // every key of this tile is masked for this row
        std::fill(sr, sr + n_keys, 0.0f);
        continue;
      }
      const float new_max = std::max(s.max[r], tile_max);
      const float correction = std::exp(s.max[r] - new_max);  // exp(-inf) = 0 on the first tile
      float* acc = &s.acc[static_cast<size_t>(r) * d];
      if (correction != 1.0f)
        for (int i = 0; i < d; ++i) acc[i] *= correction;
      s.sum[r] = s.sum[r] * correction + ExpShiftedAndSum(sr, n_keys, new_max);
      s.max[r] = new_max;
    }
    // acc += p @ values
    for (int r = 0; r < rows; ++r)
      AccumulateValues(&s.scores[static_cast<size_t>(r) * kv_tile], s.values.data(), n_keys,
                       &s.acc[static_cast<size_t>(r) * d], d);
  }
  for (int r = 0; r < rows; ++r) {
    float* o = out + (item.first_row + r / group) * out_stride + (item.kv_head * group + r % group) * d;
    const float inv = 1.0f / s.sum[r];
    const float* acc = &s.acc[static_cast<size_t>(r) * d];
    for (int i = 0; i < d; ++i) o[i] = acc[i] * inv;
  }
}

// After RunTile: clang refuses to make a function multiversioned (target_clones) once it
// has been called.
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
  // Larger tiles (later positions) first, so the slowest items do not start last.
  pool.ParallelFor(static_cast<int64_t>(items_.size()), [&](int64_t i, int thread) {
    const WorkItem& item = items_[items_.size() - 1 - i];
    RunTile(item, q, q_stride, kv, positions, out, out_stride, scratch_[thread]);
  });
}

}  // namespace bpt
