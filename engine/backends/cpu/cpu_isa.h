// Which CPU kernels run: the instruction-set level this CPU supports, checked once at load.
// Each kernel family is compiled once per level (cpu_<family>_<level>.cpp, the same template
// built with that level's -m flags), and the backend picks one set of entry points at construction.
#pragma once

#include "engine_options.h"
#include "status.h"

namespace bpt {

// The best level this CPU and OS support (never kAuto).
CpuIsa DetectCpuIsa();
// True when this machine can run kernels of `isa` (kAuto: always).
bool CpuSupports(CpuIsa isa);
// True where vdpbf16ps (two multiply-adds per lane) retires as often as an fp32 FMA, so bf16
// weights are multiplied at twice the FMA rate: AMD's AVX512-BF16 (measured on a Zen 5 EPYC:
// 409 against 219 GFLOP/s per core). Intel's Sapphire Rapids issues it at a quarter of the FMA
// rate (measured: 84 against 165), half the multiply-adds.
bool CpuBf16DotOutpacesFma();
// `requested` resolved: kAuto becomes DetectCpuIsa(); a level the CPU lacks is FailedPrecondition
// naming the option and what the CPU has.
StatusOr<CpuIsa> ResolveCpuIsa(CpuIsa requested);

}  // namespace bpt
