#include "cpu_isa.h"

#include <string>

namespace bpt {

CpuIsa DetectCpuIsa() {
  __builtin_cpu_init();
  // __builtin_cpu_supports checks the OS saves the wider registers too (XCR0), not only CPUID.
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  if (avx512 && __builtin_cpu_supports("avx512bf16")) return CpuIsa::kAvx512Bf16;
  if (avx512) return CpuIsa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return CpuIsa::kAvx2;
  return CpuIsa::kPortable;
}

bool CpuBf16DotOutpacesFma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_is("amd");
}

bool CpuSupports(CpuIsa isa) { return static_cast<int>(isa) <= static_cast<int>(DetectCpuIsa()); }

StatusOr<CpuIsa> ResolveCpuIsa(CpuIsa requested) {
  const CpuIsa best = DetectCpuIsa();
  if (requested == CpuIsa::kAuto) return best;
  if (!CpuSupports(requested))
    return FailedPrecondition(std::string("cpu_isa ") + CpuIsaName(requested) + ": this CPU supports up to " +
                              CpuIsaName(best));
  return requested;
}

}  // namespace bpt
