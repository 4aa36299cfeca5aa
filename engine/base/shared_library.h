// Libraries the engine loads at run time rather than links: the SentencePiece shim (its
// protobuf would clash with gRPC's) and the CUDA backend (a CPU-only machine needs no CUDA
// library, and cuBLAS's 94 KiB of static thread-local storage stays out of every thread that a
// CPU process starts). Each is looked for where the build and the install put it.
#pragma once

#include <string>

#include "status.h"

namespace bpt {

// Tries, in order: the path in the environment variable `env_override` (when set), beside
// the executable, ../lib from it, then the loader's own search path. The handle stays open for
// the life of the process. The error lists every path tried and why it failed.
// own_namespace: load it and its dependencies into a link-map namespace of their own
// (dlmopen(LM_ID_NEWLM)), where none of their symbols can meet the process's.
StatusOr<void*> OpenSharedLibrary(const std::string& file_name, const char* env_override, int dlopen_flags,
                                  bool own_namespace = false);

}  // namespace bpt
