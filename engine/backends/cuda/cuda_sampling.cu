// Sampling on the device: the same choices as engine/sampling/sampler.cpp, so that a step sends back
// token ids and logprobs instead of [sequences, vocab] logits. Truncations are thresholds on
// the penalized logits, found by bisection (a count or a probability mass per pass), which
// keeps every token tied at a threshold where the host's sort keeps the lower ids; the draw
// walks the candidates in token order, a different order from the host's, so the same seed
// gives the same tokens on the same backend, and the same distribution on both.
#include <climits>
#include <string>

#include "cuda_kernels.cuh"

namespace bpt::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBisections = 48;  // from a range of logits to adjacent floats

struct Best {
  float value;
  int32_t index;
};

// Higher value wins; ties go to the lower id, as std::max_element and the host's sort do.
__device__ __forceinline__ Best Better(Best a, Best b) {
  return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

// Reductions over the block; each ends with the shared scratch free for the next.
__device__ float BlockSum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0;
  for (int w = 0; w < kWarps; ++w) total += shared[w];
  __syncthreads();
  return total;
}

__device__ float BlockMax(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m = fmaxf(m, shared[w]);
  __syncthreads();
  return m;
}

__device__ Best BlockBest(Best v, Best* shared) {
  for (int o = 16; o > 0; o >>= 1) {
    const Best other{__shfl_xor_sync(0xffffffffu, v.value, o), __shfl_xor_sync(0xffffffffu, v.index, o)};
    v = Better(v, other);
  }
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  Best b{-INFINITY, INT_MAX};
  for (int w = 0; w < kWarps; ++w) b = Better(b, shared[w]);
  __syncthreads();
  return b;
}

// Largest x in [lo, hi] with measure(x) >= need, where measure falls as x rises; lo when
// none passes (a top_k beyond the finite logits keeps all of them). lo and hi are finite.
template <typename Measure>
__device__ float LargestThreshold(float lo, float hi, float need, Measure measure) {
  if (measure(hi) >= need) return hi;
  for (int i = 0; i < kBisections; ++i) {
    const float mid = lo + (hi - lo) * 0.5f;
    if (mid <= lo || mid >= hi) break;
    if (measure(mid) >= need) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

__global__ void __launch_bounds__(kThreads)
    SampleKernel(const float* logits, int vocab, const SampleRowParams* params, const PenaltyEntry* penalties,
                 float* scratch, SampleResult* results) {
  __shared__ float shared_f[kWarps];
  __shared__ Best shared_best[kWarps];
  __shared__ float prefix[kThreads];
  __shared__ int32_t chosen_shared;

  const SampleRowParams p = params[blockIdx.x];
  const float* raw = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float* pen = scratch + static_cast<int64_t>(blockIdx.x) * vocab;
  SampleResult& result = results[blockIdx.x];
  const int tid = threadIdx.x;

  // Log-softmax of the raw logits: what logprobs report, before penalties and truncation.
  float m = -INFINITY;
  for (int i = tid; i < vocab; i += kThreads) m = fmaxf(m, raw[i]);
  const float raw_max = BlockMax(m, shared_f);
  float z = 0;
  for (int i = tid; i < vocab; i += kThreads) z += expf(raw[i] - raw_max);
  const float log_z = raw_max + logf(BlockSum(z, shared_f));

  for (int k = 0; k < p.top_logprobs && k < kMaxTopLogprobs && k < vocab; ++k) {
    Best best{-INFINITY, INT_MAX};
    for (int i = tid; i < vocab; i += kThreads) {
      bool taken = false;
      for (int j = 0; j < k; ++j) taken = taken || result.top_ids[j] == i;
      if (!taken) best = Better(best, {raw[i], i});
    }
    best = BlockBest(best, shared_best);
    if (tid == 0) {
      result.top_ids[k] = best.index;
      result.top_logprobs[k] = best.value - log_z;
    }
    __syncthreads();
  }

  // Penalties, on a copy: each entry is a distinct token, so no two threads touch one logit.
  for (int i = tid; i < vocab; i += kThreads) pen[i] = raw[i];
  __syncthreads();
  for (int e = tid; e < p.penalty_count; e += kThreads) {
    const PenaltyEntry entry = penalties[p.penalty_begin + e];
    float l = pen[entry.token];
    if (p.repetition_penalty != 1.0f && (entry.in_prompt || entry.count > 0))
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    if (entry.count > 0) l -= p.frequency_penalty * entry.count + p.presence_penalty;
    pen[entry.token] = l;
  }
  __syncthreads();

  Best best{-INFINITY, INT_MAX};
  float low = INFINITY;
  for (int i = tid; i < vocab; i += kThreads) {
    best = Better(best, {pen[i], i});
    // The lowest finite logit: with a masked (-inf) one as the bisection's lower bound, the
    // first midpoint is -inf + inf = NaN, which no measure passes, so the threshold stayed
    // -inf: top-k and top-p kept every token, and the draw's fallback could pick a masked one.
    // A finite bound also leaves every masked token below the threshold.
    if (pen[i] > -INFINITY) low = fminf(low, pen[i]);
  }
  best = BlockBest(best, shared_best);
  int32_t chosen = best.index;
  if (p.temperature != 0.0f) {
    const float top = best.value, t = p.temperature;
    low = -BlockMax(-low, shared_f);
    auto count_at_least = [&](float x) {
      float c = 0;
      for (int i = tid; i < vocab; i += kThreads) c += pen[i] >= x ? 1.0f : 0.0f;
      return BlockSum(c, shared_f);
    };
    auto mass_at_least = [&](float x) {
      float s = 0;
      for (int i = tid; i < vocab; i += kThreads)
        if (pen[i] >= x) s += expf((pen[i] - top) / t);
      return BlockSum(s, shared_f);
    };
    float threshold = low;
    if (p.top_k > 0 && p.top_k < vocab) threshold = LargestThreshold(low, top, static_cast<float>(p.top_k), count_at_least);
    if (p.top_p < 1.0f) {
      const float kept = mass_at_least(threshold);
      threshold = LargestThreshold(threshold, top, p.top_p * kept, mass_at_least);
    }
    if (p.min_p > 0.0f) threshold = fmaxf(threshold, top + t * logf(p.min_p));

    // The draw: the first candidate, in token order, whose running mass passes u * total.
    const int chunk = (vocab + kThreads - 1) / kThreads;
    const int begin = min(vocab, tid * chunk), end = min(vocab, begin + chunk);
    float local = 0;
    for (int i = begin; i < end; ++i)
      if (pen[i] >= threshold) local += expf((pen[i] - top) / t);
    prefix[tid] = local;
    if (tid == 0) chosen_shared = -1;
    __syncthreads();
    for (int offset = 1; offset < kThreads; offset *= 2) {  // inclusive scan
      const float add = tid >= offset ? prefix[tid - offset] : 0.0f;
      __syncthreads();
      prefix[tid] += add;
      __syncthreads();
    }
    const float target = p.uniform * prefix[kThreads - 1];
    const float before = tid > 0 ? prefix[tid - 1] : 0.0f;  // exactly where the previous range ends
    if (local > 0 && before <= target && target < prefix[tid]) {
      float cumulative = before;
      int last = -1;  // the range's last candidate, should rounding leave the target unreached
      for (int i = begin; i < end; ++i) {
        if (pen[i] < threshold) continue;
        last = i;
        cumulative += expf((pen[i] - top) / t);
        if (cumulative > target) break;
      }
      chosen_shared = last;
    }
    __syncthreads();
    chosen = chosen_shared;
    if (chosen < 0) {  // rounding put the target past the total: the last candidate
      Best last{-INFINITY, INT_MAX};
      for (int i = tid; i < vocab; i += kThreads)
        if (pen[i] >= threshold) last = Better(last, {static_cast<float>(i), i});
      chosen = BlockBest(last, shared_best).index;
    }
  }
  if (tid == 0) {
    result.token = chosen;
    result.logprob = raw[chosen] - log_z;
  }
}

}  // namespace

Status LaunchSample(const float* logits, int rows, int vocab, const SampleRowParams* params,
                    const PenaltyEntry* penalties, float* scratch, SampleResult* results, cudaStream_t stream) {
  if (rows <= 0 || vocab <= 0)
    return Internal("Sample: " + std::to_string(rows) + " rows of " + std::to_string(vocab) + " logits");
  SampleKernel<<<rows, kThreads, 0, stream>>>(logits, vocab, params, penalties, scratch, results);
  return CudaStatus(cudaGetLastError(), "SampleKernel");
}

}  // namespace bpt::cuda
