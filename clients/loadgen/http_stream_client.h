// One loadgen client's /v1/completions streams over HTTP/1.1, one at a time on one keep-alive
// connection (cpp-httplib's client; the SSE framing is ours).
#pragma once

#include <httplib.h>

#include <string>

#include "stream_client.h"

namespace bptserve::loadgen {

class HttpStreamClient final : public StreamClient {
 public:
  // server: host:port. api_key: sent as `Authorization: Bearer <key>` when not empty.
  HttpStreamClient(const std::string& server, const std::string& api_key, std::string model);

  // A 200 stream must end with exactly one finish_reason chunk, one usage chunk and one
  // [DONE], or with an error event and [DONE]; anything else, or a stream cut short, breaks
  // the protocol.
  StreamResult Stream(const LoadRequest& request) override;

 private:
  httplib::Client client_;
  std::string model_;
};

// GET /v1/models: the first model's id. Throws std::runtime_error naming what went wrong.
std::string FirstServedModelId(const std::string& server, const std::string& api_key);

}  // namespace bptserve::loadgen
