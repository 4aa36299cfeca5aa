// One loadgen client, whichever protocol it speaks: the same request in, the same record out, so
// the two modes do the same work and the report and the exit code judge them alike.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bptserve::loadgen {

using Clock = std::chrono::steady_clock;

// Sampling is the model's defaults but for the seed, and EOS is ignored, so every request
// generates exactly max_new_tokens tokens whichever protocol carries it.
struct LoadRequest {
  std::string prompt;
  int max_new_tokens = 0;
  uint64_t seed = 0;
};

struct StreamResult {
  // "OK" or a gRPC code number; an HTTP status code, or "stream_error:<type>" for an error event
  // after a 200. None: the request never got one (the connection failed before a status).
  std::optional<std::string> status;
  bool succeeded = false;
  bool protocol_violation = false;
  std::string problem;  // why it failed or broke the protocol, for stderr
  std::optional<double> ttft_s;
  std::vector<double> inter_token_s;
  double e2e_s = 0;
  int64_t tokens = 0;
};

// Sends its requests one at a time, each to its end.
class StreamClient {
 public:
  virtual ~StreamClient() = default;
  virtual StreamResult Stream(const LoadRequest& request) = 0;
};

}  // namespace bptserve::loadgen
