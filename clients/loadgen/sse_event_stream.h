// Server-Sent Events framing: bytes in as the transport hands them over (split anywhere, even
// between a CR and its LF), each complete event's data out. Comment lines and the fields other
// than data (event, id, retry) carry nothing the completions stream uses and are skipped.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace bptserve::loadgen {

class SseEventStream {
 public:
  // on_data gets each event these bytes complete: its data lines joined with '\n'.
  void Feed(std::string_view bytes, const std::function<void(std::string_view data)>& on_data);
  // Bytes after the last complete event: the stream was cut short.
  bool mid_event() const { return !line_.empty() || has_data_; }

 private:
  void EndLine(const std::function<void(std::string_view data)>& on_data);

  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool after_cr_ = false;  // a CR ended the last line; an LF right after it belongs to it
};

}  // namespace bptserve::loadgen
