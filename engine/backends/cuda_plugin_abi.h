// The boundary between the engine and the CUDA plugin, libbptserve_cuda.so, which
// backend_factory.cpp dlopen()s and cuda_backend.cu implements; both include this header, so
// the names and signatures below cannot drift apart within one build.
//
// The entry points have C linkage (unmangled names for dlsym), but C++ objects cross them: a
// bpt::Backend* with its vtable, bpt::ModelConfig, bpt::EngineOptions and bpt::Status
// (std::string, std::vector and friends inside). Their layouts are not checked at the boundary;
// a plugin built from other sources would read them wrongly and fail in ways no message could
// explain. The version number is what makes crossing safe: the engine calls
// bptserve_cuda_plugin_abi_version() before any other entry point and refuses a plugin that
// returns another number, or that lacks the function (a plugin from before versions existed).
//
// Bump BPTSERVE_CUDA_PLUGIN_ABI_VERSION whenever any of these changes:
//   - backend.h: the Backend interface (a virtual function added, removed, reordered or
//     re-typed) or a type it passes (Tensor, StepLayout, AttentionShape, SamplingRow, ...);
//   - the options passed: EngineOptions (engine_options.h), ModelConfig (and RopeScaling), Status;
//   - the entry points below: one added or removed, a signature, or what one promises.
// The plugin must also come from the same compiler and standard library as the engine; the
// number cannot see that, so ship the two from one build.
#pragma once

#define BPTSERVE_CUDA_PLUGIN_ABI_VERSION 5

namespace bpt {
class Backend;
class Status;
struct ModelConfig;
struct EngineOptions;
}  // namespace bpt

extern "C" {
// BPTSERVE_CUDA_PLUGIN_ABI_VERSION as the plugin was compiled.
int bptserve_cuda_plugin_abi_version();
// Visible CUDA devices; 0 when there is no driver or no device.
int bptserve_cuda_device_count();
// Null on failure, with *status saying why; *status is left as it was on success. The caller
// owns the backend and deletes it through Backend's virtual destructor.
bpt::Backend* bptserve_cuda_create_backend(const bpt::ModelConfig* config, const bpt::EngineOptions* options,
                                           bpt::Status* status);
}
