// Picks and creates the compute backend for a device name. The CUDA backend is a plugin,
// libbptserve_cuda.so, loaded on first use: a build or a machine without it runs on the CPU.
#pragma once

#include <memory>
#include <string>

#include "backend.h"
#include "cpu_attention.h"
#include "model_config.h"

namespace bpt {

struct BackendOptions {
  int num_threads = 0;              // CPU: 0 means all hardware threads
  AttentionTiling attention_tiling; // CPU attention tiles
  int max_sequences_per_step = 16;  // CUDA: sizes the per-step block-table and decode buffers
  int max_step_tokens = 256;        // CUDA: sizes the per-step metadata buffers
  bool cuda_graphs = true;          // CUDA: decode steps replay captured graphs
  bool device_sampling = true;      // CUDA: Backend::Sample on the device
};

// OK when the CUDA plugin loads, has this engine's ABI version (cuda_plugin_abi.h) and sees a
// device; otherwise FailedPrecondition saying which of these fails. The plugin is the first of:
// the path in $BPTSERVE_CUDA_PLUGIN, beside the executable, ../lib from it, the loader's search
// path (shared_library.h); it is loaded once per process.
Status CheckCudaDevice();

// CheckCudaDevice() for the plugin at plugin_path, loaded now rather than found and cached:
// for tests, which point it at stand-in plugins of other ABI versions.
Status CheckCudaDeviceWithPlugin(const std::string& plugin_path);

// device: "cpu", "cuda" or "auto" (cuda when CheckCudaDevice() is OK, else cpu).
StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& device, const ModelConfig& config,
                                                 const BackendOptions& options);

}  // namespace bpt
