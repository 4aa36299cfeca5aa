// BPT_CHECK(condition, message): an invariant between two parts of bptserve, one that only a
// bug can break (a block the prefix index names is in the cache; a layer index the weight loader
// hands over is below the layer count). When it is false the process prints
//   file:line: BPT_CHECK(condition) failed: message
// to stderr and aborts, in every build type (it is not assert: NDEBUG does not remove it),
// leaving a core dump at the broken invariant instead of a std::out_of_range thrown through
// the request path or a wrong answer served.
//
// Never for anything a request, a model file or the machine can cause: those are errors to
// return as a Status, and the process goes on serving. `message` is evaluated only on failure,
// so it may build a string.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace bpt::internal {

[[noreturn, gnu::cold]] inline void CheckFailed(const char* file, int line, const char* condition,
                                                std::string_view message) {
  std::fprintf(stderr, "%s:%d: BPT_CHECK(%s) failed: %.*s\n", file, line, condition,
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace bpt::internal

#define BPT_CHECK(condition, message)                                                          \
  do {                                                                                         \
    if (!(condition)) ::bpt::internal::CheckFailed(__FILE__, __LINE__, #condition, (message)); \
  } while (0)
