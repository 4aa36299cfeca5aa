// Memory figures of a process from /proc/<pid>/status, for the tests that bound it.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace bpt::testing {

// A kB field of /proc/<process>/status in bytes (VmRSS: now, VmHWM: peak); process is a pid or
// "self". -1 when absent.
inline int64_t ProcStatusBytes(const std::string& process, const std::string& field) {
  std::ifstream in("/proc/" + process + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  return -1;
}

}  // namespace bpt::testing
