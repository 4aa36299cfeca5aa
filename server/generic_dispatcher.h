// Every call but health goes through here: bptserve.v1.Inference and server reflection are served
// over gRPC's generic callback API, so a call is admitted (API key, model loaded, not draining)
// from its initial metadata alone, before one byte of its message is read: an unauthenticated
// peer cannot make the server hold a message of up to --max-message-mb. Each admitted call then
// reads and parses its request itself (generate_call.h, unary_call.h, reflection_service.h).
#pragma once

#include <grpcpp/generic/async_generic_service.h>

#include <atomic>
#include <string>
#include <vector>

#include "engine.h"
#include "api_key_auth.h"
#include "engine_worker.h"
#include "metrics.h"
#include "server_options.h"

namespace bpt::server {

class GenericDispatcher final : public grpc::CallbackGenericService {
 public:
  GenericDispatcher(const ServerOptions& options, ApiKeyAuth auth, Metrics* metrics);

  // The model is loaded: requests are served from now on.
  void SetReady(Engine* engine, EngineWorker* worker);
  // Draining: new requests get UNAVAILABLE.
  void StopAccepting() { accepting_ = false; }
  // Generate and Prefill streams not yet done (their last message may still be on its way).
  int open_streams() const { return open_streams_.load(); }

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override;

 private:
  // OK when an Inference call may proceed: authenticated, model loaded, not draining.
  Status AdmitInference(const grpc::CallbackServerContext& context) const;
  grpc::ServerGenericBidiReactor* Refuse(const Status& status);
  // The call's GenerationRequest::cache_salt: its API key's, with --kv-cache-salt-per-api-key.
  std::string CacheSalt(const grpc::CallbackServerContext& context) const;

  const ServerOptions options_;
  const ApiKeyAuth auth_;
  Metrics* const metrics_;
  const std::vector<std::string> services_;  // what reflection lists
  std::atomic<Engine*> engine_{nullptr};
  std::atomic<EngineWorker*> worker_{nullptr};
  std::atomic<bool> accepting_{true};
  std::atomic<int> open_streams_{0};
};

}  // namespace bpt::server
