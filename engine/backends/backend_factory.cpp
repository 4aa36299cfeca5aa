#include "backend_factory.h"

#include <dlfcn.h>

#include <mutex>
#include <new>

#include "cpu_backend.h"
#include "cuda_backend.h"
#include "shared_library.h"

namespace bpt {
namespace {

struct CudaPlugin {
  decltype(&bptserve_cuda_device_count) device_count = nullptr;
  decltype(&bptserve_cuda_create_backend) create_backend = nullptr;
};

StatusOr<const CudaPlugin*> LoadCudaPlugin() {
  static std::once_flag once;
  static CudaPlugin plugin;
  static Status status;
  std::call_once(once, [] {
    StatusOr<void*> handle = OpenSharedLibrary("libbptserve_cuda.so", "BPTSERVE_CUDA_PLUGIN", RTLD_NOW | RTLD_LOCAL);
    if (!handle.ok()) {
      status = handle.status();
      return;
    }
    plugin.device_count = reinterpret_cast<decltype(plugin.device_count)>(dlsym(*handle, "bptserve_cuda_device_count"));
    plugin.create_backend =
        reinterpret_cast<decltype(plugin.create_backend)>(dlsym(*handle, "bptserve_cuda_create_backend"));
    if (plugin.device_count == nullptr || plugin.create_backend == nullptr)
      status = FailedPrecondition("libbptserve_cuda.so lacks a bptserve_cuda_* entry point");
  });
  if (!status.ok()) return status;
  return &plugin;
}

}  // namespace

Status CheckCudaDevice() {
  StatusOr<const CudaPlugin*> plugin = LoadCudaPlugin();
  if (!plugin.ok())
    return FailedPrecondition("device cuda: the CUDA backend is not available (" + plugin.status().message() + ")");
  if ((*plugin)->device_count() == 0) return FailedPrecondition("device cuda: no CUDA device is visible");
  return OkStatus();
}

StatusOr<std::unique_ptr<Backend>> CreateBackend(const ModelConfig& config, const EngineOptions& options) {
  const std::string& device = options.device;
  if (device != "cpu" && device != "cuda" && device != "auto")
    return InvalidArgument("device '" + device + "' is not one of cpu, cuda, auto");
  const bool use_cuda = device == "cuda" || (device == "auto" && CheckCudaDevice().ok());
  if (!use_cuda) {
    // Its attention scratch is sized by the (file-checked) config; a machine too small for it
    // is an error to report, not an exception to end the process with.
    try {
      return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(config, options.cpu));
    } catch (const std::bad_alloc&) {
      return ResourceExhausted("out of host memory while allocating the CPU backend's attention scratch");
    }
  }
  BPT_RETURN_IF_ERROR(CheckCudaDevice());
  Status status;
  Backend* backend = (*LoadCudaPlugin())->create_backend(&config, &options, &status);
  if (backend == nullptr) return status;
  return std::unique_ptr<Backend>(backend);
}

}  // namespace bpt
