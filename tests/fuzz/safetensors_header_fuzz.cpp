// Arbitrary bytes as a whole safetensors file. Whatever the parser accepts must describe tensors
// that lie inside the input with exactly their dtype's bytes; converting them must stay in bounds
// (AddressSanitizer watches the reads).
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tensors = bpt::ParseSafetensors(data, size, "fuzz.safetensors");
  if (!tensors.ok()) return 0;
  std::vector<float> converted;
  for (const auto& [name, view] : *tensors) {
    if (view.data < data || view.num_bytes > size || view.data + view.num_bytes > data + size) std::abort();
    uint64_t elements = 1;
    for (int64_t d : view.shape) elements *= static_cast<uint64_t>(d);
    if (elements * bpt::DTypeSize(view.dtype) != view.num_bytes) std::abort();
    converted.resize(view.num_bytes / bpt::DTypeSize(view.dtype));
    bpt::ConvertToF32(view, converted.data());
  }
  return 0;
}
