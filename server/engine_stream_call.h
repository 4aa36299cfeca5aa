// One server-streaming call that the engine worker serves (Generate, Prefill): the gRPC reactor
// and the worker's sink in one object. It reads the one request itself (so a request gRPC could
// not parse is answered, named and counted here), hands the job to the worker, which pushes
// events from its thread; the reactor writes them one at a time (merging, as the RPC says, the
// events that arrive while a write is in flight) and ends the stream with exactly one status.
// Each RPC's class says only how its request becomes a job and its events become messages.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "engine_worker.h"
#include "metrics.h"

namespace bpt::server {

class EngineStreamCall : public grpc::ServerGenericBidiReactor, public GenerationSink {
 public:
  // A call of RPC class Call, for a call already admitted (key, model, drain). The call keeps
  // itself alive until gRPC is done with it (OnDone). open_streams counts calls from here to
  // OnDone, so a drain can wait for their last write. cache_salt goes into the job's request
  // (GenerationRequest::cache_salt; empty: none).
  template <typename Call>
  static Call* Start(grpc::CallbackServerContext* context, EngineWorker& worker, Metrics* metrics,
                     std::atomic<int>* open_streams, std::string cache_salt) {
    std::shared_ptr<Call> call(new Call(context, worker, metrics, open_streams, std::move(cache_salt)));
    Begin(call);
    return call.get();
  }

  // GenerationSink, called on the engine worker's thread.
  bool Cancelled() const final { return cancelled_.load(); }
  void OnFinished(const StatusOr<GenerationResult>& result) final;

  // grpc::ServerGenericBidiReactor
  void OnReadDone(bool ok) final;
  void OnWriteDone(bool ok) final;
  void OnCancel() final { cancelled_ = true; }
  void OnDone() final;

 protected:
  // Each RPC's class inherits this constructor (Start calls it).
  EngineStreamCall(grpc::CallbackServerContext* context, EngineWorker& worker, Metrics* metrics,
                   std::atomic<int>* open_streams, std::string cache_salt);

  // The refusal of a call that carries no message, e.g. "Generate carried no GenerateRequest".
  virtual std::string MissingRequest() const = 0;
  // The request's bytes (ParseRequest) to the worker's job; an error names the field.
  virtual Status ToJob(grpc::ByteBuffer* bytes, GenerationJob* job) = 0;
  // The last message of a stream that ends OK; also where its metrics are recorded (e2e_s: from
  // the call's start).
  virtual std::unique_ptr<google::protobuf::Message> FinalMessage(const GenerationResult& result, double e2e_s) = 0;
  // Folds `next` into `back`, the last message still waiting for its write (tokens that travel
  // together, progress that supersedes progress); false: they go as two messages.
  virtual bool Merge(google::protobuf::Message& back, google::protobuf::Message& next) { return false; }
  void Enqueue(std::unique_ptr<google::protobuf::Message> response);

  EngineWorker& worker_;
  Metrics* const metrics_;

 private:
  // Keeps the call alive until gRPC is done with it (OnDone), and reads its request.
  static void Begin(const std::shared_ptr<EngineStreamCall>& call);
  // Ends the stream with an error (bad request, queue full, ...), counted.
  void Fail(const grpc::Status& status);
  // Whether a cancel now is the deadline's rather than the client's own.
  bool DeadlinePassed() const;
  void Complete(const grpc::Status& status);
  void WriteNextLocked();

  grpc::CallbackServerContext* const context_;
  std::atomic<int>* const open_streams_;
  const std::string cache_salt_;
  const std::chrono::system_clock::time_point deadline_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<bool> cancelled_{false};
  grpc::ByteBuffer request_bytes_;

  std::recursive_mutex mu_;  // gRPC may run a reaction inline from StartWrite
  std::shared_ptr<EngineStreamCall> self_;
  std::deque<std::unique_ptr<google::protobuf::Message>> pending_;
  grpc::ByteBuffer in_flight_;
  bool writing_ = false;
  bool write_failed_ = false;
  std::optional<grpc::Status> final_status_;
  bool finish_called_ = false;
};

}  // namespace bpt::server
