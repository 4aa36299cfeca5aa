// One Generate stream: the gRPC reactor and the engine worker's sink in one object. The worker
// pushes events from its thread; the reactor writes them one at a time (coalescing tokens that
// arrive while a write is in flight) and ends the stream with exactly one status.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "bptserve/v1/bptserve.pb.h"
#include "server/engine_worker.h"
#include "server/metrics.h"

namespace bpt::server {

class GenerateCall final : public grpc::ServerWriteReactor<bptserve::v1::GenerateResponse>,
                           public GenerationSink {
 public:
  // The call keeps itself alive until gRPC is done with it (OnDone).
  // open_streams counts calls from Start to OnDone, so a drain can wait for their last write.
  static std::shared_ptr<GenerateCall> Start(grpc::CallbackServerContext* context,
                                             const bptserve::v1::GenerateOptions& options, Metrics* metrics,
                                             std::atomic<int>* open_streams);

  // Ends the stream with an error before any work (bad request, queue full, ...).
  void Fail(const grpc::Status& status);

  // GenerationSink, called on the engine worker's thread.
  bool Cancelled() const override { return cancelled_.load(); }
  void OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) override;
  void OnToken(const TokenOutput& token) override;
  void OnFinished(const StatusOr<GenerationResult>& result) override;

  // grpc::ServerWriteReactor
  void OnWriteDone(bool ok) override;
  void OnCancel() override { cancelled_ = true; }
  void OnDone() override;

 private:
  GenerateCall(grpc::CallbackServerContext* context, const bptserve::v1::GenerateOptions& options,
               Metrics* metrics, std::atomic<int>* open_streams);
  void Enqueue(bptserve::v1::GenerateResponse response);
  void Complete(const grpc::Status& status);
  void WriteNextLocked();

  const bool prefill_progress_;
  const bool request_uses_prefix_cache_;
  Metrics* const metrics_;
  std::atomic<int>* const open_streams_;
  const std::chrono::system_clock::time_point deadline_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<bool> cancelled_{false};

  std::recursive_mutex mu_;  // gRPC may run a reaction inline from StartWrite
  std::shared_ptr<GenerateCall> self_;
  std::deque<bptserve::v1::GenerateResponse> pending_;
  bptserve::v1::GenerateResponse in_flight_;
  bool writing_ = false;
  bool write_failed_ = false;
  std::optional<grpc::Status> final_status_;
  bool finish_called_ = false;
};

}  // namespace bpt::server
