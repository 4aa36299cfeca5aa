#include "shared_library.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <vector>

namespace bpt {
namespace {

std::string ExecutableDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, n);
  return path.substr(0, path.rfind('/'));
}

}  // namespace

StatusOr<void*> OpenSharedLibrary(const std::string& file_name, const char* env_override, int dlopen_flags,
                                  bool own_namespace) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv(env_override)) candidates.push_back(env);
  const std::string dir = ExecutableDir();
  if (!dir.empty()) {
    candidates.push_back(dir + "/" + file_name);
    candidates.push_back(dir + "/../lib/" + file_name);
  }
  candidates.push_back(file_name);
  std::string errors;
  for (const auto& path : candidates) {
    void* handle = own_namespace ? dlmopen(LM_ID_NEWLM, path.c_str(), dlopen_flags) : dlopen(path.c_str(), dlopen_flags);
    if (handle != nullptr) return handle;
    const char* e = dlerror();
    errors += "\n  " + path + ": " + (e ? e : "not loadable");
  }
  return FailedPrecondition("cannot load " + file_name + ":" + errors);
}

}  // namespace bpt
