// Picks and creates the compute backend for a device name. The CUDA backend is a plugin,
// libbptserve_cuda.so, loaded on first use: a build or a machine without it runs on the CPU.
#pragma once

#include <memory>
#include <string>

#include "backend.h"
#include "engine_options.h"
#include "model_config.h"

namespace bpt {

// OK when the CUDA plugin loads and sees a device; otherwise FailedPrecondition saying which
// of the two is missing.
Status CheckCudaDevice();

// On options.device: "cpu", "cuda" or "auto" (cuda when CheckCudaDevice() is OK, else cpu).
StatusOr<std::unique_ptr<Backend>> CreateBackend(const ModelConfig& config, const EngineOptions& options);

}  // namespace bpt
