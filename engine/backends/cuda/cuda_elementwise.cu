// The memory-bound kernels of the CUDA backend: one pass over their data, fp32 arithmetic.
#include <algorithm>
#include <string>

#include "cuda_kernels.cuh"

namespace bpt::cuda {
namespace {

constexpr int kThreads = 256;

int Blocks(int64_t count) { return static_cast<int>(std::min<int64_t>((count + kThreads - 1) / kThreads, 65535 * 8)); }

__device__ float BlockSum(float value, float* shared /* [32] */) {
  for (int o = 16; o > 0; o >>= 1) value += __shfl_xor_sync(0xffffffffu, value, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  const int warps = blockDim.x / 32;
  float total = 0;
  for (int w = 0; w < warps; ++w) total += shared[w];
  __syncthreads();  // shared is free again for the caller's next reduction
  return total;
}

// table: [vocab, hidden]; ids: [n]; out: [n, hidden]
__global__ void EmbedKernel(const bf16* table, const int32_t* ids, int64_t hidden, bf16* out) {
  const int64_t t = blockIdx.x;
  const bf16* row = table + static_cast<int64_t>(ids[t]) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) out[t * hidden + i] = row[i];
}

// x, out: [rows, hidden]; weight: [hidden]
__global__ void RmsNormKernel(const bf16* x, const bf16* weight, int64_t hidden, float eps, bf16* out) {
  __shared__ float partial[32];
  const bf16* in = x + blockIdx.x * hidden;
  float sum_sq = 0;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float v = __bfloat162float(in[i]);
    sum_sq += v * v;
  }
  const float inv_rms = rsqrtf(BlockSum(sum_sq, partial) / hidden + eps);
  bf16* o = out + blockIdx.x * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x)
    o[i] = __float2bfloat16(__bfloat162float(weight[i]) * (__bfloat162float(in[i]) * inv_rms));
}

// x, y, out: [rows, hidden]; each thread reads y[i] before the barrier in BlockSum and writes
// out[i] after it, so out may alias y.
__global__ void AddRmsNormKernel(bf16* x, const bf16* y, const bf16* weight, int64_t hidden, float eps, bf16* out) {
  __shared__ float partial[32];
  bf16* xr = x + blockIdx.x * hidden;
  const bf16* yr = y + blockIdx.x * hidden;
  float sum_sq = 0;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const bf16 sum = __float2bfloat16(__bfloat162float(xr[i]) + __bfloat162float(yr[i]));
    xr[i] = sum;
    const float v = __bfloat162float(sum);  // the norm sees the stored residual
    sum_sq += v * v;
  }
  const float inv_rms = rsqrtf(BlockSum(sum_sq, partial) / hidden + eps);
  bf16* o = out + blockIdx.x * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x)
    o[i] = __float2bfloat16(__bfloat162float(weight[i]) * (__bfloat162float(xr[i]) * inv_rms));
}

__global__ void AddKernel(bf16* x, const bf16* y, int64_t count) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = __float2bfloat16(__bfloat162float(x[i]) + __bfloat162float(y[i]));
}

__global__ void AddBiasKernel(bf16* out, const bf16* bias, int64_t rows, int64_t cols) {
  const int64_t count = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(__bfloat162float(out[i]) + __bfloat162float(bias[i % cols]));
}

// One block per token; threads over (head, pair). qkv: [n, qkv_stride]; cos, sin: [n, half]
__global__ void RopeKernel(bf16* qkv, int64_t qkv_stride, int num_rotated_heads, int head_dim, const float* cos,
                           const float* sin) {
  const int64_t t = blockIdx.x;
  const int half = head_dim / 2;
  const float* c = cos + t * half;
  const float* s = sin + t * half;
  bf16* row = qkv + t * qkv_stride;
  for (int i = threadIdx.x; i < num_rotated_heads * half; i += blockDim.x) {
    const int head = i / half, j = i % half;
    bf16* v = row + static_cast<int64_t>(head) * head_dim;
    const float a = __bfloat162float(v[j]), b = __bfloat162float(v[j + half]);
    v[j] = __float2bfloat16(a * c[j] - b * s[j]);
    v[j + half] = __float2bfloat16(b * c[j] + a * s[j]);
  }
}

// One block per token. Slot arithmetic is 64-bit: slot * kv_dim passes 2^31 in large pools.
__global__ void AppendKvKernel(const bf16* qkv, int64_t qkv_stride, int64_t k_col, int kv_dim, const int64_t* slots,
                               bf16* k_cache, bf16* v_cache) {
  const int64_t t = blockIdx.x;
  const bf16* k = qkv + t * qkv_stride + k_col;
  const bf16* v = k + kv_dim;
  const int64_t base = slots[t] * kv_dim;
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    k_cache[base + i] = k[i];
    v_cache[base + i] = v[i];
  }
}

__global__ void SwiGluKernel(const bf16* gate_up, int64_t rows, int64_t ffn, bf16* out) {
  const int64_t count = rows * ffn;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / ffn, c = i % ffn;
    const float gate = __bfloat162float(gate_up[r * 2 * ffn + c]);
    const float up = __bfloat162float(gate_up[r * 2 * ffn + ffn + c]);
    out[i] = __float2bfloat16(gate / (1.0f + __expf(-gate)) * up);
  }
}

__global__ void GatherRowsKernel(const bf16* x, int64_t cols, const int64_t* rows, bf16* out) {
  const bf16* src = x + rows[blockIdx.x] * cols;
  bf16* dst = out + static_cast<int64_t>(blockIdx.x) * cols;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = src[i];
}

Status Launched(const char* kernel) { return CudaStatus(cudaGetLastError(), kernel); }

Status RequirePositive(const char* what, int64_t value) {
  if (value <= 0) return Internal(std::string(what) + " must be positive, got " + std::to_string(value));
  return OkStatus();
}

}  // namespace

Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return OkStatus();
  return Internal(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(error) + " (" +
                  cudaGetErrorString(error) + ")");
}

Status LaunchEmbed(const bf16* table, int64_t vocab, const int32_t* ids, int64_t n, int64_t hidden, bf16* out,
                   cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("Embed tokens", n));
  BPT_RETURN_IF_ERROR(RequirePositive("Embed vocab", vocab));
  EmbedKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(table, ids, hidden, out);
  return Launched("EmbedKernel");
}

Status LaunchRmsNorm(const bf16* x, const bf16* weight, int64_t rows, int64_t hidden, float eps, bf16* out,
                     cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("RmsNorm rows", rows));
  BPT_RETURN_IF_ERROR(RequirePositive("RmsNorm hidden", hidden));
  RmsNormKernel<<<static_cast<unsigned>(rows), 1024, 0, stream>>>(x, weight, hidden, eps, out);
  return Launched("RmsNormKernel");
}

Status LaunchAddRmsNorm(bf16* x, const bf16* y, const bf16* weight, int64_t rows, int64_t hidden, float eps,
                        bf16* out, cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("AddRmsNorm rows", rows));
  BPT_RETURN_IF_ERROR(RequirePositive("AddRmsNorm hidden", hidden));
  AddRmsNormKernel<<<static_cast<unsigned>(rows), 1024, 0, stream>>>(x, y, weight, hidden, eps, out);
  return Launched("AddRmsNormKernel");
}

Status LaunchAdd(bf16* x, const bf16* y, int64_t count, cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("Add count", count));
  AddKernel<<<Blocks(count), kThreads, 0, stream>>>(x, y, count);
  return Launched("AddKernel");
}

Status LaunchAddBias(bf16* out, const bf16* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("AddBias rows", rows));
  BPT_RETURN_IF_ERROR(RequirePositive("AddBias cols", cols));
  AddBiasKernel<<<Blocks(rows * cols), kThreads, 0, stream>>>(out, bias, rows, cols);
  return Launched("AddBiasKernel");
}

Status LaunchRope(bf16* qkv, int64_t n, int64_t qkv_stride, int num_heads, int num_kv_heads, int head_dim,
                  const float* cos, const float* sin, cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("Rope tokens", n));
  if (head_dim % 2 != 0) return Internal("Rope: head_dim " + std::to_string(head_dim) + " is odd");
  if (static_cast<int64_t>(num_heads + 2 * num_kv_heads) * head_dim > qkv_stride)
    return Internal("Rope: the q and k heads do not fit the row stride");
  RopeKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(qkv, qkv_stride, num_heads + num_kv_heads, head_dim,
                                                                 cos, sin);
  return Launched("RopeKernel");
}

Status LaunchAppendKv(const bf16* qkv, int64_t n, int64_t qkv_stride, int64_t k_col, int kv_dim,
                      const int64_t* slots, bf16* k_cache, bf16* v_cache, cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("AppendKv tokens", n));
  if (k_col + 2 * kv_dim > qkv_stride) return Internal("AppendKv: k and v do not fit the row stride");
  AppendKvKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(qkv, qkv_stride, k_col, kv_dim, slots, k_cache,
                                                                     v_cache);
  return Launched("AppendKvKernel");
}

Status LaunchSwiGlu(const bf16* gate_up, int64_t rows, int64_t ffn, bf16* out, cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("SwiGlu rows", rows));
  BPT_RETURN_IF_ERROR(RequirePositive("SwiGlu ffn", ffn));
  SwiGluKernel<<<Blocks(rows * ffn), kThreads, 0, stream>>>(gate_up, rows, ffn, out);
  return Launched("SwiGluKernel");
}

Status LaunchGatherRows(const bf16* x, int64_t cols, const int64_t* rows, int64_t count, bf16* out,
                        cudaStream_t stream) {
  BPT_RETURN_IF_ERROR(RequirePositive("GatherRows count", count));
  GatherRowsKernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(x, cols, rows, out);
  return Launched("GatherRowsKernel");
}

}  // namespace bpt::cuda
