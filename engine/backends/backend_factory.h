// Picks and creates the compute backend for a device name. The CUDA backend is a plugin,
// libbptserve_cuda.so, loaded on first use: a build or a machine without it runs on the CPU.
#pragma once

#include <memory>
#include <string>

#include "backend.h"
#include "engine_options.h"
#include "model_config.h"

namespace bpt {

// OK when the CUDA plugin loads, has this engine's ABI version (cuda_plugin_abi.h) and sees a
// device; otherwise FailedPrecondition saying which of these fails. The plugin is the first of:
// the path in $BPTSERVE_CUDA_PLUGIN, beside the executable, ../lib from it, the loader's search
// path (shared_library.h); it is loaded once per process.
Status CheckCudaDevice();

// CheckCudaDevice() for the plugin at plugin_path, loaded now rather than found and cached:
// for tests, which point it at stand-in plugins of other ABI versions.
Status CheckCudaDeviceWithPlugin(const std::string& plugin_path);

// On options.device: "cpu", "cuda" or "auto" (cuda when CheckCudaDevice() is OK, else cpu).
StatusOr<std::unique_ptr<Backend>> CreateBackend(const ModelConfig& config, const EngineOptions& options);

}  // namespace bpt
