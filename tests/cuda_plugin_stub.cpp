// A stand-in for libbptserve_cuda.so that cuda_plugin_abi_test.cpp points the factory at. Built
// three ways (tests/CMakeLists.txt): without the version function, as a plugin from before ABI
// versions; one version ahead; and at this engine's version. The first two report a device, so
// only the version check keeps the factory from accepting them.
#include "cuda_plugin_abi.h"

#ifdef STUB_ABI_VERSION
extern "C" int bptserve_cuda_plugin_abi_version() { return STUB_ABI_VERSION; }
#endif

extern "C" int bptserve_cuda_device_count() { return STUB_DEVICE_COUNT; }

extern "C" bpt::Backend* bptserve_cuda_create_backend(const bpt::ModelConfig*, const bpt::EngineOptions*,
                                                      bpt::Status*) {
  return nullptr;
}
