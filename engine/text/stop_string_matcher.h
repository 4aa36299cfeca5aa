// Finds stop strings in streamed text. Text that could still be the start of a stop string is
// held back, so a stop string is never emitted, not even in part.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bpt {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  // Adds newly decoded text; returns what may be emitted now. On a match, *stopped is set and
  // the returned text ends right before the stop string.
  std::string Push(std::string_view text, bool* stopped);
  // At the end of generation: the text still held back.
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
};

}  // namespace bpt
