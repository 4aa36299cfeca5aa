// bf16 rounding for the backend's own (baseline-ISA) code. The kernels have their copies in
// cpu_simd.inc, inside each level's namespace: an inline function shared with a file built with
// -mavx512f could be linked in compiled for AVX-512 and run on a CPU without it.
#pragma once

#include <cstdint>
#include <cstring>

namespace bpt {

// Round to nearest even, as PyTorch and the CUDA backend round; NaN stays NaN.
inline uint16_t RoundToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace bpt
