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

  // The cache salt of the key a request authenticates with (--kv-cache-salt-per-api-key): a
  // SHA-256 of the key under a fixed label, hex, never the key itself. The same key gives the
  // same salt on every replica and after restarts, so a tenant finds its documents in the shared
  // tiers, and only its own. Empty when keys are off or the request does not authenticate.
  std::string CacheSalt(const grpc::ServerContextBase& context) const;
  std::string CacheSalt(const std::vector<std::string_view>& values) const;

 private:
  // OK with the index of the matching key in *key.
  Status Match(const std::vector<std::string_view>& values, size_t* key) const;
  static std::vector<std::string_view> AuthorizationValues(const grpc::ServerContextBase& context);

  std::vector<std::string> keys_;
  std::vector<std::string> salts_;  // [keys_.size()]
};

}  // namespace bpt::server
