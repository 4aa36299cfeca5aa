// One Generate stream: the gRPC reactor and the engine worker's sink in one object. It reads the
// one request itself (so a request gRPC could not parse is answered, named and counted here),
// hands it to the worker, which pushes events from its thread; the reactor writes them one at a
// time (coalescing tokens that arrive while a write is in flight) and ends the stream with
// exactly one status.
#pragma once

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "bptserve/v1/bptserve.pb.h"
#include "engine_worker.h"
#include "metrics.h"

namespace bpt::server {

class GenerateCall final : public grpc::ServerGenericBidiReactor, public GenerationSink {
 public:
  // For a call already admitted (key, model, drain). The call keeps itself alive until gRPC is
  // done with it (OnDone). open_streams counts calls from Start to OnDone, so a drain can wait
  // for their last write.
  static GenerateCall* Start(grpc::CallbackServerContext* context, EngineWorker& worker,
                             Metrics* metrics, std::atomic<int>* open_streams);

  // GenerationSink, called on the engine worker's thread.
  bool Cancelled() const override { return cancelled_.load(); }
  void OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) override;
  void OnToken(const TokenOutput& token) override;
  void OnFinished(const StatusOr<GenerationResult>& result) override;

  // grpc::ServerGenericBidiReactor
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override { cancelled_ = true; }
  void OnDone() override;

 private:
  GenerateCall(grpc::CallbackServerContext* context, EngineWorker& worker, Metrics* metrics,
               std::atomic<int>* open_streams);
  // Ends the stream with an error (bad request, queue full, ...), counted.
  void Fail(const grpc::Status& status);
  // Whether a cancel now is the deadline's rather than the client's own.
  bool DeadlinePassed() const;
  void Enqueue(bptserve::v1::GenerateResponse response);
  void Complete(const grpc::Status& status);
  void WriteNextLocked();

  grpc::CallbackServerContext* const context_;
  EngineWorker& worker_;
  Metrics* const metrics_;
  std::atomic<int>* const open_streams_;
  const std::chrono::system_clock::time_point deadline_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<bool> cancelled_{false};
  grpc::ByteBuffer request_bytes_;
  // From the request, set before it goes to the worker.
  bool prefill_progress_ = false;
  bool request_uses_prefix_cache_ = true;

  std::recursive_mutex mu_;  // gRPC may run a reaction inline from StartWrite
  std::shared_ptr<GenerateCall> self_;
  std::deque<bptserve::v1::GenerateResponse> pending_;
  grpc::ByteBuffer in_flight_;
  bool writing_ = false;
  bool write_failed_ = false;
  std::optional<grpc::Status> final_status_;
  bool finish_called_ = false;
};

}  // namespace bpt::server
