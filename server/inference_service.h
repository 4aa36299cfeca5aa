// bptserve.v1.Inference over the callback API: Generate hands its work to the engine worker and
// returns at once; the unary calls touch only the tokenizer and the model's description.
#pragma once

#include <atomic>

#include "bptserve/v1/bptserve.grpc.pb.h"
#include "engine/engine.h"
#include "server/api_key_auth.h"
#include "server/engine_worker.h"
#include "server/metrics.h"
#include "server/server_options.h"

namespace bpt::server {

class InferenceService final : public bptserve::v1::Inference::CallbackService {
 public:
  InferenceService(const ServerOptions& options, ApiKeyAuth auth, Metrics* metrics);

  // The model is loaded: requests are served from now on.
  void SetReady(Engine* engine, EngineWorker* worker);
  // Draining: new requests get UNAVAILABLE.
  void StopAccepting() { accepting_ = false; }
  // Generate streams not yet done (their last message may still be on its way).
  int open_streams() const { return open_streams_.load(); }

  grpc::ServerWriteReactor<bptserve::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const bptserve::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context, const bptserve::v1::TokenizeRequest* request,
                                     bptserve::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const bptserve::v1::DetokenizeRequest* request,
                                       bptserve::v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const bptserve::v1::GetModelInfoRequest* request,
                                         bptserve::v1::ModelInfo* response) override;

 private:
  // OK when the call may proceed: authenticated, model loaded, not draining.
  grpc::Status Admit(const grpc::CallbackServerContext& context) const;
  grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context, const grpc::Status& status);

  const ServerOptions options_;
  const ApiKeyAuth auth_;
  Metrics* const metrics_;
  std::atomic<Engine*> engine_{nullptr};
  std::atomic<EngineWorker*> worker_{nullptr};
  std::atomic<bool> accepting_{true};
  std::atomic<int> open_streams_{0};
};

}  // namespace bpt::server
