// API keys: requests carry one `authorization: Bearer <key>` (the scheme in any case); keys come
// from a file, one per line.
#pragma once

#include <grpcpp/server_context.h>

#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace bpt::server {

class ApiKeyAuth {
 public:
  // An empty path accepts every request.
  static StatusOr<ApiKeyAuth> Load(const std::string& path);
  bool enabled() const { return !keys_.empty(); }
  // From the initial metadata alone, so a call is refused before its message is read.
  // UNAUTHENTICATED naming what is missing, ambiguous or wrong; OK when keys are off.
  Status Check(const grpc::ServerContextBase& context) const;
  // The same check over the values of every `authorization` header of an HTTP request, so the
  // gRPC and HTTP APIs accept and refuse the same keys in the same words.
  Status CheckAuthorization(const std::vector<std::string_view>& values) const;

 private:
  std::vector<std::string> keys_;
};

}  // namespace bpt::server
