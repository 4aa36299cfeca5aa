#include "engine_options.h"

namespace bpt {
namespace {

template <typename Enum, size_t N>
bool ParseName(std::string_view name, const char* const (&names)[N], Enum* out) {
  for (size_t i = 0; i < N; ++i)
    if (name == names[i]) {
      *out = static_cast<Enum>(i);
      return true;
    }
  return false;
}

// In the enums' order.
constexpr const char* kElementTypeNames[] = {"auto", "fp32", "bf16"};
constexpr const char* kCpuIsaNames[] = {"auto", "portable", "avx2", "avx512", "avx512-bf16"};
constexpr const char* kAttentionBackendNames[] = {"auto", "cudnn", "own"};

}  // namespace

bool ParseElementType(std::string_view name, ElementType* out) { return ParseName(name, kElementTypeNames, out); }
const char* ElementTypeName(ElementType type) { return kElementTypeNames[static_cast<int>(type)]; }

bool ParseCpuIsa(std::string_view name, CpuIsa* out) { return ParseName(name, kCpuIsaNames, out); }
const char* CpuIsaName(CpuIsa isa) { return kCpuIsaNames[static_cast<int>(isa)]; }

bool ParseAttentionBackend(std::string_view name, AttentionBackend* out) {
  return ParseName(name, kAttentionBackendNames, out);
}
const char* AttentionBackendName(AttentionBackend backend) {
  return kAttentionBackendNames[static_cast<int>(backend)];
}

}  // namespace bpt
