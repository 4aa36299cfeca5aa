// API keys: requests carry `authorization: Bearer <key>`; keys come from a file, one per line.
#pragma once

#include <grpcpp/server_context.h>

#include <string>
#include <vector>

#include "engine/status.h"

namespace bpt::server {

class ApiKeyAuth {
 public:
  // An empty path accepts every request.
  static StatusOr<ApiKeyAuth> Load(const std::string& path);
  bool enabled() const { return !keys_.empty(); }
  // UNAUTHENTICATED naming what is missing or wrong; OK when keys are off.
  grpc::Status Check(const grpc::ServerContextBase& context) const;

 private:
  std::vector<std::string> keys_;
};

}  // namespace bpt::server
