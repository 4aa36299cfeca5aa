// Attention over the paged KV cache, in two kernels:
// - prefill: a thread block takes 64 rows (query tokens x the heads of one KV group), walks
//   the sequence's keys in tiles of 64 read through the block table, computes scores on the
//   tensor cores (bf16 in, fp32 out), and keeps an online softmax (running max and sum per
//   row, the output rescaled in shared memory), so no score matrix beyond one tile exists;
// - decode (flash-decoding): one query per sequence, its keys split into ranges that run in
//   parallel thread blocks, each writing an unnormalized partial; a combine kernel merges them,
//   so one sequence with a million cached tokens still fills the GPU.
// Softmax runs in the log2 domain (scores pre-multiplied by log2(e)) so each exponent is exp2.
#include <mma.h>

#include <cfloat>
#include <string>

#include "engine/cuda_kernels.cuh"

namespace bpt::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kBr = kPrefillTileRows;  // query rows per block
constexpr int kBc = 64;                // keys per tile
constexpr int kPrefillThreads = 128;   // 4 warps, 16 rows each
constexpr float kLog2e = 1.4426950408889634f;

// Shared-memory row strides, padded against bank conflicts; wmma needs multiples of 8 (bf16)
// or 4 (fp32) elements and 32-byte aligned fragment pointers, which these keep.
template <int D>
struct PrefillLayout {
  static constexpr int kLdQ = D + 8, kLdK = D + 8, kLdS = kBc + 4, kLdP = kBc + 8, kLdO = D + 4;
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + sizeof(bf16) * kBr * kLdQ;
  static constexpr size_t kV = kK + sizeof(bf16) * kBc * kLdK;
  static constexpr size_t kS = kV + sizeof(bf16) * kBc * kLdK;
  static constexpr size_t kP = kS + sizeof(float) * kBr * kLdS;
  static constexpr size_t kO = kP + sizeof(bf16) * kBr * kLdP;
  static constexpr size_t kBytes = kO + sizeof(float) * kBr * kLdO;
};

__device__ __forceinline__ int64_t Slot(const int32_t* table, int block_size, int64_t key) {
  return static_cast<int64_t>(table[key / block_size]) * block_size + key % block_size;
}

template <int D>
__global__ void __launch_bounds__(kPrefillThreads)
    PrefillAttentionKernel(AttentionArgs a, const AttentionSequence* sequences, const PrefillTile* tiles) {
  using L = PrefillLayout<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem + L::kQ);    // [kBr, kLdQ]
  bf16* k_s = reinterpret_cast<bf16*>(smem + L::kK);    // [kBc, kLdK]
  bf16* v_s = reinterpret_cast<bf16*>(smem + L::kV);    // [kBc, kLdK]
  float* s_s = reinterpret_cast<float*>(smem + L::kS);  // [kBr, kLdS] scores, log2 domain
  bf16* p_s = reinterpret_cast<bf16*>(smem + L::kP);    // [kBr, kLdP] probabilities
  float* o_s = reinterpret_cast<float*>(smem + L::kO);  // [kBr, kLdO] unnormalized output

  const PrefillTile tile = tiles[blockIdx.x];
  const AttentionSequence seq = sequences[tile.sequence];
  const int kv_head = blockIdx.y;
  const int group = a.num_heads / a.num_kv_heads;
  const int kv_dim = a.num_kv_heads * D;
  const int32_t* table = a.block_tables + seq.block_table_offset;
  const int64_t first_pos = seq.start_position + tile.first_token;
  const int64_t last_pos = first_pos + tile.num_tokens - 1;
  const int64_t first_row = seq.first_row + tile.first_token;
  constexpr int kVecs = D / 8;  // 16-byte vectors per head row

  // Row r of the block is token r / group of the tile, query head kv_head * group + r % group.
  for (int i = threadIdx.x; i < kBr * kVecs; i += kPrefillThreads) {
    const int r = i / kVecs, c = (i % kVecs) * 8;
    const int t = r / group, h = kv_head * group + r % group;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (t < tile.num_tokens) v = *reinterpret_cast<const uint4*>(a.qkv + (first_row + t) * a.qkv_stride + h * D + c);
    *reinterpret_cast<uint4*>(q_s + r * L::kLdQ + c) = v;
  }
  for (int i = threadIdx.x; i < kBr * L::kLdO; i += kPrefillThreads) o_s[i] = 0.0f;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = warp * 16 + lane / 2;  // the softmax row of this lane; two lanes per row
  const int half = lane % 2;             // which 32 of the tile's 64 keys it takes
  const int row_token = row / group;
  const bool row_valid = row_token < tile.num_tokens;
  const int64_t row_pos = first_pos + row_token;
  const float score_scale = a.scale * kLog2e;
  float row_max = -INFINITY, row_sum = 0.0f;

  const int64_t key_end = last_pos + 1;
  int64_t key_begin = a.sliding_window > 0 ? max(int64_t{0}, first_pos - a.sliding_window + 1) : 0;
  key_begin -= key_begin % kBc;

  for (int64_t k0 = key_begin; k0 < key_end; k0 += kBc) {
    __syncthreads();  // every warp is done with the previous tile's K and V
    for (int i = threadIdx.x; i < kBc * kVecs; i += kPrefillThreads) {
      const int j = i / kVecs, c = (i % kVecs) * 8;
      const int64_t key = k0 + j;
      uint4 k = make_uint4(0, 0, 0, 0), v = k;
      if (key < key_end) {
        const int64_t offset = Slot(table, a.block_size, key) * kv_dim + kv_head * D + c;
        k = *reinterpret_cast<const uint4*>(a.k_cache + offset);
        v = *reinterpret_cast<const uint4*>(a.v_cache + offset);
      }
      *reinterpret_cast<uint4*>(k_s + j * L::kLdK + c) = k;
      *reinterpret_cast<uint4*>(v_s + j * L::kLdK + c) = v;
    }
    __syncthreads();

    // S = Q K^T for this warp's 16 rows: [16, D] x [D, kBc].
    {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> s[kBc / 16];
      for (int n = 0; n < kBc / 16; ++n) wmma::fill_fragment(s[n], 0.0f);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> q;
        wmma::load_matrix_sync(q, q_s + warp * 16 * L::kLdQ + kk * 16, L::kLdQ);
#pragma unroll
        for (int n = 0; n < kBc / 16; ++n) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> k;  // K^T
          wmma::load_matrix_sync(k, k_s + n * 16 * L::kLdK + kk * 16, L::kLdK);
          wmma::mma_sync(s[n], q, k, s[n]);
        }
      }
#pragma unroll
      for (int n = 0; n < kBc / 16; ++n)
        wmma::store_matrix_sync(s_s + warp * 16 * L::kLdS + n * 16, s[n], L::kLdS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of the row's 32 keys; the pair of lanes shares the row's max and sum.
    float* s_row = s_s + row * L::kLdS + half * 32;
    float tile_max = -INFINITY;
    for (int c = 0; c < 32; ++c) {
      const int64_t key = k0 + half * 32 + c;
      const bool visible = row_valid && key <= row_pos && (a.sliding_window == 0 || key > row_pos - a.sliding_window);
      const float s = visible ? s_row[c] * score_scale : -INFINITY;
      s_row[c] = s;
      tile_max = fmaxf(tile_max, s);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float new_max = fmaxf(row_max, tile_max);
    const float base = new_max == -INFINITY ? 0.0f : new_max;  // a row with nothing visible yet
    const float alpha = exp2f(row_max - base);
    float tile_sum = 0.0f;
    bf16* p_row = p_s + row * L::kLdP + half * 32;
    for (int c = 0; c < 32; ++c) {
      const float p = exp2f(s_row[c] - base);
      p_row[c] = __float2bfloat16(p);
      tile_sum += p;
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    row_sum = row_sum * alpha + tile_sum;
    row_max = new_max;
    float* o_row = o_s + row * L::kLdO + half * (D / 2);
    for (int c = 0; c < D / 2; ++c) o_row[c] *= alpha;
    __syncwarp();

    // O += P V for this warp's 16 rows: [16, kBc] x [kBc, D].
#pragma unroll
    for (int n = 0; n < D / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;
      wmma::load_matrix_sync(o, o_s + warp * 16 * L::kLdO + n * 16, L::kLdO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kBc / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> p;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> v;
        wmma::load_matrix_sync(p, p_s + warp * 16 * L::kLdP + kk * 16, L::kLdP);
        wmma::load_matrix_sync(v, v_s + kk * 16 * L::kLdK + n * 16, L::kLdK);
        wmma::mma_sync(o, p, v, o);
      }
      wmma::store_matrix_sync(o_s + warp * 16 * L::kLdO + n * 16, o, L::kLdO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (row_valid) {
    const float inv_sum = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
    const int h = kv_head * group + row % group;
    bf16* out = a.out + (first_row + row_token) * a.out_stride + h * D + half * (D / 2);
    const float* o_row = o_s + row * L::kLdO + half * (D / 2);
    for (int c = 0; c < D / 2; ++c) out[c] = __float2bfloat16(o_row[c] * inv_sum);
  }
}

constexpr int kDecodeThreads = 128;  // keys per chunk: one per thread
constexpr int kMaxGroup = 64;

// One block per (split, KV head, item). q: [group, D] in shared memory; each thread scores one
// key of the chunk against every head of the group, then threads over (head, dim) accumulate
// the chunk's values.
template <int D>
__global__ void __launch_bounds__(kDecodeThreads)
    DecodeAttentionKernel(AttentionArgs a, const AttentionSequence* sequences, const DecodeItem* items,
                          int max_splits, float* partial_acc, float* partial_max,
                          float* partial_sum) {
  const DecodeItem item = items[blockIdx.z];
  const int split = blockIdx.x;
  if (split >= item.num_splits) return;
  const AttentionSequence seq = sequences[item.sequence];
  const int kv_head = blockIdx.y;
  const int group = a.num_heads / a.num_kv_heads;
  const int kv_dim = a.num_kv_heads * D;
  const int32_t* table = a.block_tables + seq.block_table_offset;
  const int64_t query_pos = seq.start_position;
  const int64_t begin = item.key_begin + split * item.split_len;
  const int64_t end = min(query_pos + 1, begin + item.split_len);

  extern __shared__ __align__(16) unsigned char smem[];
  float* q_s = reinterpret_cast<float*>(smem);              // [group, D], scaled, log2 domain
  float* acc_s = q_s + group * D;                          // [group, D]
  float* p_s = acc_s + group * D;                          // [group, kDecodeThreads]
  float* max_s = p_s + group * kDecodeThreads;             // [group]
  float* sum_s = max_s + group;                            // [group]
  float* alpha_s = sum_s + group;                          // [group]
  int64_t* slot_s = reinterpret_cast<int64_t*>(alpha_s + group + (group % 2));  // [kDecodeThreads]

  const float score_scale = a.scale * kLog2e;
  const bf16* q_row = a.qkv + static_cast<int64_t>(seq.first_row) * a.qkv_stride;
  for (int i = threadIdx.x; i < group * D; i += kDecodeThreads) {
    const int g = i / D, d = i % D;
    q_s[i] = __bfloat162float(q_row[(kv_head * group + g) * D + d]) * score_scale;
    acc_s[i] = 0.0f;
  }
  for (int g = threadIdx.x; g < group; g += kDecodeThreads) {
    max_s[g] = -INFINITY;
    sum_s[g] = 0.0f;
  }
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t c0 = begin; c0 < end; c0 += kDecodeThreads) {
    const int count = static_cast<int>(min(static_cast<int64_t>(kDecodeThreads), end - c0));
    const int j = threadIdx.x;
    if (j < count) {
      const int64_t slot = Slot(table, a.block_size, c0 + j);
      slot_s[j] = slot;
      const uint4* k_vec = reinterpret_cast<const uint4*>(a.k_cache + slot * kv_dim + kv_head * D);
      float k[D];
#pragma unroll
      for (int v = 0; v < D / 8; ++v) {
        const uint4 packed = k_vec[v];
        const bf16* e = reinterpret_cast<const bf16*>(&packed);
#pragma unroll
        for (int x = 0; x < 8; ++x) k[v * 8 + x] = __bfloat162float(e[x]);
      }
      for (int g = 0; g < group; ++g) {
        float s = 0.0f;
#pragma unroll
        for (int d = 0; d < D; ++d) s += q_s[g * D + d] * k[d];
        p_s[g * kDecodeThreads + j] = s;
      }
    }
    __syncthreads();
    // Each warp updates the softmax state of heads warp, warp + 4, ...
    for (int g = warp; g < group; g += kDecodeThreads / 32) {
      float* p = p_s + g * kDecodeThreads;
      float m = -INFINITY;
      for (int x = lane; x < count; x += 32) m = fmaxf(m, p[x]);
      for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      const float new_max = fmaxf(max_s[g], m);
      float sum = 0.0f;
      for (int x = lane; x < count; x += 32) {
        const float e = exp2f(p[x] - new_max);
        p[x] = e;
        sum += e;
      }
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      __syncwarp();
      if (lane == 0) {
        const float alpha = exp2f(max_s[g] - new_max);
        alpha_s[g] = alpha;
        sum_s[g] = sum_s[g] * alpha + sum;
        max_s[g] = new_max;
      }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < group * D; i += kDecodeThreads) {
      const int g = i / D, d = i % D;
      const float* p = p_s + g * kDecodeThreads;
      float acc = acc_s[i] * alpha_s[g];
      for (int x = 0; x < count; ++x)
        acc += p[x] * __bfloat162float(a.v_cache[slot_s[x] * kv_dim + kv_head * D + d]);
      acc_s[i] = acc;
    }
    __syncthreads();
  }

  for (int i = threadIdx.x; i < group * D; i += kDecodeThreads) {
    const int g = i / D, d = i % D;
    const int64_t head_index = static_cast<int64_t>(blockIdx.z) * a.num_heads + kv_head * group + g;
    partial_acc[(head_index * max_splits + split) * D + d] = acc_s[i];
    if (d == 0) {
      partial_max[head_index * max_splits + split] = max_s[g];
      partial_sum[head_index * max_splits + split] = sum_s[g];
    }
  }
}

// One block per (item, query head), one thread per output dimension.
template <int D>
__global__ void DecodeCombineKernel(AttentionArgs a, const AttentionSequence* sequences, const DecodeItem* items,
                                    int max_splits, const float* partial_acc, const float* partial_max,
                                    const float* partial_sum) {
  const DecodeItem item = items[blockIdx.x];
  const int head = blockIdx.y;
  const int64_t head_index = static_cast<int64_t>(blockIdx.x) * a.num_heads + head;
  const float* maxes = partial_max + head_index * max_splits;
  const float* sums = partial_sum + head_index * max_splits;
  float global_max = -INFINITY;
  for (int s = 0; s < item.num_splits; ++s) global_max = fmaxf(global_max, maxes[s]);
  const float base = global_max == -INFINITY ? 0.0f : global_max;
  float total = 0.0f, acc = 0.0f;
  const int d = threadIdx.x;
  for (int s = 0; s < item.num_splits; ++s) {
    const float w = exp2f(maxes[s] - base);
    total += sums[s] * w;
    acc += partial_acc[(head_index * max_splits + s) * D + d] * w;
  }
  const AttentionSequence seq = sequences[item.sequence];
  a.out[static_cast<int64_t>(seq.first_row) * a.out_stride + head * D + d] =
      __float2bfloat16(total > 0.0f ? acc / total : 0.0f);
}

size_t DecodeSharedBytes(int group, int head_dim) {
  const size_t floats = 2 * group * head_dim + group * kDecodeThreads + 3 * group + (group % 2);
  return floats * sizeof(float) + kDecodeThreads * sizeof(int64_t);
}

Status CheckArgs(const AttentionArgs& a) {
  if (!AttentionHeadDimSupported(a.head_dim))
    return Unimplemented("CUDA attention: head_dim " + std::to_string(a.head_dim) + " is not one of 32, 64, 128");
  if (a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0)
    return Internal("CUDA attention: num_heads is not a multiple of num_kv_heads");
  const int group = a.num_heads / a.num_kv_heads;
  if (group > kMaxGroup || kPrefillTileRows % group != 0)
    return Unimplemented("CUDA attention: a GQA group of " + std::to_string(group) +
                         " query heads per KV head (supported: divisors of 64)");
  if (a.qkv_stride % 8 != 0) return Internal("CUDA attention: qkv rows are not 16-byte aligned");
  return OkStatus();
}

template <int D>
Status PrefillFor(const AttentionArgs& a, const AttentionSequence* sequences, const PrefillTile* tiles, int num_tiles,
                  cudaStream_t stream) {
  const size_t bytes = PrefillLayout<D>::kBytes;
  const dim3 grid(num_tiles, a.num_kv_heads);
  PrefillAttentionKernel<D><<<grid, kPrefillThreads, bytes, stream>>>(a, sequences, tiles);
  return CudaStatus(cudaGetLastError(), "PrefillAttentionKernel");
}

template <int D>
Status DecodeFor(const AttentionArgs& a, const AttentionSequence* sequences, const DecodeItem* items, int num_items,
                 int max_splits_in_step, int max_splits, float* acc, float* maxes, float* sums,
                 cudaStream_t stream) {
  const size_t bytes = DecodeSharedBytes(a.num_heads / a.num_kv_heads, D);
  const dim3 grid(max_splits_in_step, a.num_kv_heads, num_items);
  DecodeAttentionKernel<D><<<grid, kDecodeThreads, bytes, stream>>>(a, sequences, items, max_splits, acc, maxes,
                                                                    sums);
  BPT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  DecodeCombineKernel<D><<<dim3(num_items, a.num_heads), D, 0, stream>>>(a, sequences, items, max_splits, acc, maxes,
                                                                          sums);
  return CudaStatus(cudaGetLastError(), "DecodeCombineKernel");
}

template <int D>
Status ConfigureFor() {
  BPT_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(PrefillAttentionKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                static_cast<int>(PrefillLayout<D>::kBytes)));
  BPT_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(DecodeAttentionKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                static_cast<int>(DecodeSharedBytes(kMaxGroup, D))));
  return OkStatus();
}

}  // namespace

Status ConfigureAttentionKernels() {
  BPT_RETURN_IF_ERROR(ConfigureFor<32>());
  BPT_RETURN_IF_ERROR(ConfigureFor<64>());
  return ConfigureFor<128>();
}

bool AttentionHeadDimSupported(int head_dim) { return head_dim == 32 || head_dim == 64 || head_dim == 128; }

Status LaunchPrefillAttention(const AttentionArgs& args, const AttentionSequence* sequences, const PrefillTile* tiles,
                              int num_tiles, cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(CheckArgs(args));
  if (num_tiles <= 0) return OkStatus();
  switch (args.head_dim) {
    case 32: return PrefillFor<32>(args, sequences, tiles, num_tiles, stream);
    case 64: return PrefillFor<64>(args, sequences, tiles, num_tiles, stream);
    default: return PrefillFor<128>(args, sequences, tiles, num_tiles, stream);
  }
}

Status LaunchDecodeAttention(const AttentionArgs& args, const AttentionSequence* sequences, const DecodeItem* items,
                             int num_items, int max_splits_in_step, int max_splits, float* partial_acc,
                             float* partial_max, float* partial_sum, cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(CheckArgs(args));
  if (num_items <= 0) return OkStatus();
  if (max_splits_in_step <= 0 || max_splits_in_step > max_splits)
    return Internal("CUDA decode attention: " + std::to_string(max_splits_in_step) + " splits; the workspace holds " +
                    std::to_string(max_splits));
  switch (args.head_dim) {
    case 32: return DecodeFor<32>(args, sequences, items, num_items, max_splits_in_step, max_splits,
                                  partial_acc, partial_max, partial_sum, stream);
    case 64: return DecodeFor<64>(args, sequences, items, num_items, max_splits_in_step, max_splits,
                                  partial_acc, partial_max, partial_sum, stream);
    default: return DecodeFor<128>(args, sequences, items, num_items, max_splits_in_step, max_splits,
                                   partial_acc, partial_max, partial_sum, stream);
  }
}

}  // namespace bpt::cuda
