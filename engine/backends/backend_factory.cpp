#include "backend_factory.h"

#include <dlfcn.h>
#include <link.h>

#include <new>

#include "cpu_backend.h"
#include "cpu_isa.h"
#include "cuda_backend.h"
#include "cuda_plugin_abi.h"
#include "shared_library.h"

namespace bpt {
namespace {

struct CudaPlugin {
  decltype(&bptserve_cuda_device_count) device_count = nullptr;
  decltype(&bptserve_cuda_create_backend) create_backend = nullptr;
};

// The file the loader opened, wherever the search found it: the one to name in an error.
std::string LoadedPath(void* handle) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr || map->l_name == nullptr || *map->l_name == 0)
    return "libbptserve_cuda.so";
  return map->l_name;
}

// The version comes first: every other entry point passes C++ objects whose layout only a
// matching version vouches for (cuda_plugin_abi.h).
StatusOr<CudaPlugin> BindCudaPlugin(void* handle) {
  const std::string path = LoadedPath(handle);
  const std::string expected = std::to_string(BPTSERVE_CUDA_PLUGIN_ABI_VERSION);
  const auto version = reinterpret_cast<decltype(&bptserve_cuda_plugin_abi_version)>(
      dlsym(handle, "bptserve_cuda_plugin_abi_version"));
  if (version == nullptr)
    return FailedPrecondition(path + " has no bptserve_cuda_plugin_abi_version(): it is a CUDA plugin from before ABI " +
                              "versions, and this engine expects ABI version " + expected +
                              "; install the libbptserve_cuda.so built with this engine");
  const int found = version();
  if (found != BPTSERVE_CUDA_PLUGIN_ABI_VERSION)
    return FailedPrecondition(path + " is CUDA plugin ABI version " + std::to_string(found) +
                              ", but this engine expects ABI version " + expected +
                              "; install the libbptserve_cuda.so built with this engine");
  CudaPlugin plugin;
  plugin.device_count = reinterpret_cast<decltype(plugin.device_count)>(dlsym(handle, "bptserve_cuda_device_count"));
  plugin.create_backend =
      reinterpret_cast<decltype(plugin.create_backend)>(dlsym(handle, "bptserve_cuda_create_backend"));
  if (plugin.device_count == nullptr || plugin.create_backend == nullptr)
    return FailedPrecondition(path + " lacks a bptserve_cuda_* entry point");
  return plugin;
}

const StatusOr<CudaPlugin>& LoadCudaPlugin() {
  static const StatusOr<CudaPlugin> plugin = []() -> StatusOr<CudaPlugin> {
    BPT_ASSIGN_OR_RETURN(void* handle,
                         OpenSharedLibrary("libbptserve_cuda.so", "BPTSERVE_CUDA_PLUGIN", RTLD_NOW | RTLD_LOCAL));
    return BindCudaPlugin(handle);
  }();
  return plugin;
}

Status CheckDevice(const StatusOr<CudaPlugin>& plugin) {
  if (!plugin.ok())
    return FailedPrecondition("device cuda: the CUDA backend is not available (" + plugin.status().message() + ")");
  if (plugin->device_count() == 0) return FailedPrecondition("device cuda: no CUDA device is visible");
  return OkStatus();
}

}  // namespace

Status CheckCudaDevice() { return CheckDevice(LoadCudaPlugin()); }

Status CheckCudaDeviceWithPlugin(const std::string& plugin_path) {
  // Never closed, like the process's plugin: the CUDA runtime inside the real one does not
  // promise to unload cleanly.
  void* handle = dlopen(plugin_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    return CheckDevice(FailedPrecondition("cannot load " + plugin_path + ": " + (error ? error : "not loadable")));
  }
  return CheckDevice(BindCudaPlugin(handle));
}

StatusOr<std::unique_ptr<Backend>> CreateBackend(const ModelConfig& config, const EngineOptions& options) {
  const std::string& device = options.device;
  if (device != "cpu" && device != "cuda" && device != "auto")
    return InvalidArgument("device '" + device + "' is not one of cpu, cuda, auto");
  const bool use_cuda = device == "cuda" || (device == "auto" && CheckCudaDevice().ok());
  if (!use_cuda) {
    if (options.cuda.attention_backend == AttentionBackend::kCudnn)
      return InvalidArgument("attention_backend cudnn: cuDNN runs on CUDA only; the CPU has its own attention kernels "
                             "(use auto, or device cuda)");
    CpuOptions cpu = options.cpu;
    BPT_ASSIGN_OR_RETURN(cpu.isa, ResolveCpuIsa(options.cpu.isa));
    // fp32 is the CPU's exact reference; bf16 halves the bytes where asked.
    const auto resolve = [](ElementType t) { return t == ElementType::kAuto ? ElementType::kFloat32 : t; };
    // Its attention scratch is sized by the (file-checked) config; a machine too small for it
    // is an error to report, not an exception to end the process with.
    try {
      return std::unique_ptr<Backend>(
          std::make_unique<CpuBackend>(config, cpu, resolve(options.weight_dtype), resolve(options.kv_dtype)));
    } catch (const std::bad_alloc&) {
      return ResourceExhausted("out of host memory while allocating the CPU backend's attention scratch");
    }
  }
  BPT_RETURN_IF_ERROR(CheckCudaDevice());
  // The CUDA kernels read and write bf16 only.
  if (options.weight_dtype == ElementType::kFloat32)
    return InvalidArgument("weight_dtype fp32: the CUDA backend stores weights in bf16; use auto or bf16");
  if (options.kv_dtype == ElementType::kFloat32)
    return InvalidArgument("kv_dtype fp32: the CUDA backend stores the KV cache in bf16; use auto or bf16");
  Status status;
  Backend* backend = LoadCudaPlugin()->create_backend(&config, &options, &status);
  if (backend == nullptr) return status;
  return std::unique_ptr<Backend>(backend);
}

}  // namespace bpt
