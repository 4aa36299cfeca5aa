// Reading a model file whole, up to a size the caller names: model directories come from
// anywhere, and a file that is larger than any real one (or a FIFO that never ends) must fail
// with a message, not exhaust memory.
#pragma once

#include <cstddef>
#include <string>

#include "status.h"

namespace bpt {

// The bytes of the file at `path`, at most max_bytes of them (InvalidArgument past that).
// NotFound when the file does not exist.
StatusOr<std::string> ReadBoundedFile(const std::string& path, size_t max_bytes);

}  // namespace bpt
