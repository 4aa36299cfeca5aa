// Shared by the gpu-labelled tests: skipping without a device, random data that bf16 holds
// exactly (so both backends start from the same values), and the error measures.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda_backend.h"

namespace bpt::testing {

// Every gpu test starts with this: reported skipped, never failed, without a device.
#define BPT_SKIP_WITHOUT_CUDA()                                                  \
  do {                                                                           \
    if (::bpt::CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible"; \
  } while (0)

// Rounds to the nearest bf16 (ties to even), as the device conversion does.
inline float RoundToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

// Uniform in [-scale, scale], never zero, exactly representable in bf16. SplitMix64: the long
// attention cases draw hundreds of millions of values.
inline std::vector<float> RandomBf16Values(size_t count, uint64_t seed, float scale = 1.0f) {
  std::vector<float> v(count);
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& x : v) {
    do {
      uint64_t z = (state += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      const float unit = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      x = RoundToBf16((2.0f * unit - 1.0f) * scale);
    } while (x == 0.0f);
  }
  return v;
}

// ||got - want|| / ||want||; a NaN anywhere (an unwritten, poisoned element) gives NaN.
inline double RelativeError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    diff += d * d;
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff / norm);
}

// The worst (row, head) of [rows, num_heads * head_dim] outputs: its largest absolute error,
// a non-finite element counting as infinite. Beside the relative L2, which one wrong head of a
// long output hardly moves.
struct HeadError {
  double max_abs = 0;
  int64_t row = -1;
  int head = -1;
};

inline HeadError WorstHeadError(const std::vector<float>& got, const std::vector<float>& want, int num_heads,
                                int head_dim) {
  HeadError worst;
  const size_t cols = static_cast<size_t>(num_heads) * head_dim;
  for (size_t r = 0; r * cols < want.size(); ++r)
    for (int h = 0; h < num_heads; ++h) {
      double head_max = 0;
      for (int i = 0; i < head_dim; ++i) {
        const size_t k = r * cols + static_cast<size_t>(h) * head_dim + i;
        head_max = std::max(head_max, std::isfinite(got[k]) ? std::abs(static_cast<double>(got[k]) - want[k])
                                                            : std::numeric_limits<double>::infinity());
      }
      if (worst.row < 0 || head_max > worst.max_abs) worst = {head_max, static_cast<int64_t>(r), h};
    }
  return worst;
}

inline bool AllFinite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace bpt::testing
