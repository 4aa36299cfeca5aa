#include "engine_stream_call.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include "grpc_status.h"

namespace bpt::server {

EngineStreamCall::EngineStreamCall(grpc::CallbackServerContext* context, EngineWorker& worker, Metrics* metrics,
                                   std::atomic<int>* open_streams, std::string cache_salt)
    : worker_(worker),
      metrics_(metrics),
      context_(context),
      open_streams_(open_streams),
      cache_salt_(std::move(cache_salt)),
      deadline_(context->deadline()),
      start_(std::chrono::steady_clock::now()) {}

void EngineStreamCall::Begin(const std::shared_ptr<EngineStreamCall>& call) {
  call->self_ = call;
  call->open_streams_->fetch_add(1);
  call->StartRead(&call->request_bytes_);
}

void EngineStreamCall::OnReadDone(bool ok) {
  if (!ok) {  // as in OnFinished: a deadline that passed before the message was read is no client cancel
    Fail(ToGrpcStatus(!context_->IsCancelled() ? InvalidArgument(MissingRequest())
                      : DeadlinePassed()       ? Status(StatusCode::kDeadlineExceeded, "deadline exceeded")
                                               : bpt::Cancelled("cancelled by the client")));
    return;
  }
  GenerationJob job;
  const Status converted = ToJob(&request_bytes_, &job);
  request_bytes_.Clear();  // the prompt is in the job now; a long one is not held twice
  if (!converted.ok()) {
    Fail(ToGrpcStatus(converted));
    return;
  }
  job.request.cache_salt = cache_salt_;
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    job.sink = self_;
  }
  const Status submitted = worker_.Submit(std::move(job));
  if (!submitted.ok()) Fail(ToGrpcStatus(submitted));
}

bool EngineStreamCall::DeadlinePassed() const {
  // The client's timer fires at its deadline and sends a cancel; this server's copy of the deadline
  // starts from when it read the request, later by that message's transit, so the client's cancel
  // can arrive just before it (0.2 ms before, seen under load). A cancel that close is the deadline.
  constexpr auto kTransitSlack = std::chrono::milliseconds(100);
  return std::chrono::system_clock::now() + kTransitSlack >= deadline_;
}

void EngineStreamCall::Fail(const grpc::Status& status) {
  if (metrics_ != nullptr) metrics_->RecordError(status.error_code());
  Complete(status);
}

void EngineStreamCall::OnFinished(const StatusOr<GenerationResult>& result) {
  if (!result.ok()) {
    Fail(ToGrpcStatus(result.status()));
    return;
  }
  if (result->finish_reason == FinishReason::kCancelled) {
    Fail(ToGrpcStatus(DeadlinePassed()     ? Status(StatusCode::kDeadlineExceeded, "deadline exceeded")
                      : cancelled_.load() ? bpt::Cancelled("cancelled by the client")
                                          : bpt::Cancelled("the server is shutting down")));
    return;
  }
  Enqueue(FinalMessage(*result, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count()));
  Complete(grpc::Status::OK);
}

void EngineStreamCall::Enqueue(std::unique_ptr<google::protobuf::Message> response) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (write_failed_ || final_status_) return;
  if (pending_.empty() || !Merge(*pending_.back(), *response)) pending_.push_back(std::move(response));
  WriteNextLocked();
}

void EngineStreamCall::Complete(const grpc::Status& status) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (final_status_) return;
  final_status_ = status;
  WriteNextLocked();
}

void EngineStreamCall::WriteNextLocked() {
  if (writing_ || finish_called_) return;
  if (!pending_.empty() && !write_failed_) {
    bool own_buffer = false;
    in_flight_.Clear();  // its last message is sent; the serializer writes into an empty buffer only
    const grpc::Status serialized =
        grpc::SerializationTraits<google::protobuf::Message>::Serialize(*pending_.front(), &in_flight_, &own_buffer);
    pending_.pop_front();
    if (serialized.ok()) {
      writing_ = true;
      StartWrite(&in_flight_);
      return;
    }
    write_failed_ = true;
    pending_.clear();
    final_status_ = serialized;
    if (metrics_ != nullptr) metrics_->RecordError(serialized.error_code());
  }
  if (final_status_) {
    finish_called_ = true;
    Finish(*final_status_);
  }
}

void EngineStreamCall::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  writing_ = false;
  if (!ok) {  // the client is gone: stop the work, drop what is queued, still finish once
    write_failed_ = true;
    cancelled_ = true;
    pending_.clear();
  }
  WriteNextLocked();
}

void EngineStreamCall::OnDone() {
  std::shared_ptr<EngineStreamCall> last_reference;
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    last_reference = std::move(self_);
  }
  open_streams_->fetch_sub(1);
}

}  // namespace bpt::server
