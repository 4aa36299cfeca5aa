// Attention over the paged KV cache, in two kernels:
// - prefill (FlashAttention-2 style): a thread block takes 64 rows (query tokens x the heads
//   of one KV group), 16 per warp, and walks the sequence's keys in tiles of 64 staged in
//   shared memory through the block table. Scores, the online softmax (running max and sum
//   per row) and the output stay in registers: S = Q K^T and O += P V are mma.sync m16n8k16
//   (bf16 in, fp32 accumulate), P passing from the first product's accumulators to the second
//   product's operand without leaving registers. No score matrix beyond one tile exists;
// - decode (flash-decoding): one query per sequence, its keys split into ranges that run in
//   parallel thread blocks, each writing an unnormalized partial; a combine kernel merges them,
//   so one sequence with a million cached tokens still fills the GPU.
// Softmax runs in the log2 domain (scores pre-multiplied by log2(e)) so each exponent is exp2.
#include <cfloat>
#include <string>

#include "cuda_kernels.cuh"

namespace bpt::cuda {
namespace {

constexpr int kBc = 64;               // keys per tile
constexpr int kPrefillThreads = 128;  // 4 warps, 16 rows each: kPrefillTileRows rows
constexpr float kLog2e = 1.4426950408889634f;

// K and V tiles in shared memory, [kBc, D + 8]: the 16-byte pad spreads a column's rows over
// all banks for the fragment loads below.
template <int D>
constexpr int kLdKv = D + 8;
template <int D>
constexpr size_t PrefillSharedBytes() {
  return 2 * sizeof(bf16) * kBc * kLdKv<D>;
}

__device__ __forceinline__ int64_t Slot(const int32_t* table, int block_size, int64_t key) {
  return static_cast<int64_t>(table[key / block_size]) * block_size + key % block_size;
}

__device__ __forceinline__ uint32_t Pack(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // lo in the low half: the lower index
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t Pack(bf16 lo, bf16 hi) {
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&lo)) |
         (static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&hi)) << 16);
}

// d += a b for one m16n8k16 tile. Fragments, with g = lane / 4 and t = lane % 4 (PTX ISA):
// a: {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)} of [16 rows, 16 k];
// b: {(k 2t..2t+1, n g), (k 2t+8.., n g)} of [16 k, 8 n];
// d: {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)} of [16 rows, 8 n].
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <int D>
__global__ void __launch_bounds__(kPrefillThreads)
    PrefillAttentionKernel(AttentionArgs a, const AttentionSequence* sequences, const PrefillTile* tiles) {
  constexpr int kLd = kLdKv<D>;
  constexpr int kKSteps = D / 16;  // k-steps of S = Q K^T
  constexpr int kDTiles = D / 8;   // n-tiles of O
  constexpr int kKeyTiles = kBc / 8;  // n-tiles of S
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* k_s = reinterpret_cast<bf16*>(smem);  // [kBc, kLd]
  bf16* v_s = k_s + kBc * kLd;                // [kBc, kLd]

  const PrefillTile tile = tiles[blockIdx.x];
  const AttentionSequence seq = sequences[tile.sequence];
  const int kv_head = blockIdx.y;
  const int group = a.num_heads / a.num_kv_heads;
  const int kv_dim = a.num_kv_heads * D;
  const int32_t* table = a.block_tables + seq.block_table_offset;
  const int64_t first_pos = seq.start_position + tile.first_token;
  const int64_t last_pos = first_pos + tile.num_tokens - 1;
  const int64_t first_row = seq.first_row + tile.first_token;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  // This thread's two rows of the block, g and g + 8 of its warp's 16. Row r of the block is
  // token r / group of the tile and query head kv_head * group + r % group.
  int row_token[2], row_head[2];
  bool row_valid[2];
  int64_t row_pos[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = warp * 16 + g + 8 * i;
    row_token[i] = r / group;
    row_head[i] = kv_head * group + r % group;
    row_valid[i] = row_token[i] < tile.num_tokens;
    row_pos[i] = first_pos + row_token[i];
  }

  // Q fragments for every k-step, straight from the step's qkv rows.
  uint32_t q[kKSteps][4];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const bf16* q_row = a.qkv + (first_row + row_token[i]) * a.qkv_stride + row_head[i] * D;
#pragma unroll
    for (int kk = 0; kk < kKSteps; ++kk) {
      q[kk][i] = row_valid[i] ? *reinterpret_cast<const uint32_t*>(q_row + kk * 16 + 2 * t) : 0u;
      q[kk][i + 2] = row_valid[i] ? *reinterpret_cast<const uint32_t*>(q_row + kk * 16 + 2 * t + 8) : 0u;
    }
  }

  float o[kDTiles][4];
#pragma unroll
  for (int n = 0; n < kDTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.0f, 0.0f};  // this thread's share; the row's four threads add up at the end
  const float score_scale = a.scale * kLog2e;

  const int64_t key_end = last_pos + 1;
  int64_t key_begin = a.sliding_window > 0 ? max(int64_t{0}, first_pos - a.sliding_window + 1) : 0;
  key_begin -= key_begin % kBc;
  constexpr int kVecs = D / 8;  // 16-byte vectors per head row

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
      *reinterpret_cast<uint4*>(k_s + j * kLd + c) = k;
      *reinterpret_cast<uint4*>(v_s + j * kLd + c) = v;
    }
    __syncthreads();

    // S = Q K^T: [16, D] x [D, kBc] per warp; K row-major is K^T column-major, as mma wants.
    float s[kKeyTiles][4];
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
      const bf16* k_row = k_s + (n * 8 + g) * kLd + 2 * t;
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk)
        Mma(s[n], q[kk], *reinterpret_cast<const uint32_t*>(k_row + kk * 16),
            *reinterpret_cast<const uint32_t*>(k_row + kk * 16 + 8));
    }

    // Online softmax; the four threads of a row (same g) share its max through shuffles.
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = e / 2;
        const int64_t key = k0 + n * 8 + 2 * t + (e % 2);
        const bool visible = row_valid[i] && key <= row_pos[i] &&
                             (a.sliding_window == 0 || key > row_pos[i] - a.sliding_window);
        s[n][e] = visible ? s[n][e] * score_scale : -INFINITY;
        tile_max[i] = fmaxf(tile_max[i], s[n][e]);
      }
    }
    float alpha[2], base[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 1));
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 2));
      const float new_max = fmaxf(row_max[i], tile_max[i]);
      base[i] = new_max == -INFINITY ? 0.0f : new_max;  // a row with nothing visible yet
      alpha[i] = exp2f(row_max[i] - base[i]);
      row_max[i] = new_max;
      row_sum[i] *= alpha[i];
    }
#pragma unroll
    for (int n = 0; n < kDTiles; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(s[n][e] - base[e / 2]);
        row_sum[e / 2] += s[n][e];
      }
    }

    // O += P V: the accumulators of key tiles 2j and 2j+1 are exactly the A fragment of
    // k-step j; V's fragment pairs two keys of one column.
#pragma unroll
    for (int j = 0; j < kBc / 16; ++j) {
      const uint32_t p[4] = {Pack(s[2 * j][0], s[2 * j][1]), Pack(s[2 * j][2], s[2 * j][3]),
                             Pack(s[2 * j + 1][0], s[2 * j + 1][1]), Pack(s[2 * j + 1][2], s[2 * j + 1][3])};
      const bf16* v0 = v_s + (j * 16 + 2 * t) * kLd + g;
#pragma unroll
      for (int n = 0; n < kDTiles; ++n) {
        const bf16* v = v0 + n * 8;
        Mma(o[n], p, Pack(v[0], v[kLd]), Pack(v[8 * kLd], v[9 * kLd]));
      }
    }
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    float sum = row_sum[i];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (!row_valid[i]) continue;
    const float inv_sum = sum > 0.0f ? 1.0f / sum : 0.0f;
    bf16* out = a.out + (first_row + row_token[i]) * a.out_stride + row_head[i] * D + 2 * t;
#pragma unroll
    for (int n = 0; n < kDTiles; ++n)
      *reinterpret_cast<__nv_bfloat162*>(out + n * 8) =
          __floats2bfloat162_rn(o[n][2 * i] * inv_sum, o[n][2 * i + 1] * inv_sum);
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
  const size_t bytes = PrefillSharedBytes<D>();
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
                                                static_cast<int>(PrefillSharedBytes<D>())));
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
