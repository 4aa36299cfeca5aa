#include "generate_call.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include "grpc_status.h"
#include "request_conversion.h"
#include "request_parsing.h"

namespace bpt::server {
namespace {

bptserve::v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kEos: return bptserve::v1::FINISH_REASON_EOS;
    case FinishReason::kStop: return bptserve::v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return bptserve::v1::FINISH_REASON_LENGTH;
    case FinishReason::kCancelled: return bptserve::v1::FINISH_REASON_CANCELLED;
  }
  return bptserve::v1::FINISH_REASON_UNSPECIFIED;
}

}  // namespace

GenerateCall::GenerateCall(grpc::CallbackServerContext* context, EngineWorker& worker,
                           Metrics* metrics, std::atomic<int>* open_streams)
    : context_(context),
      worker_(worker),
      metrics_(metrics),
      open_streams_(open_streams),
      deadline_(context->deadline()),
      start_(std::chrono::steady_clock::now()) {}

GenerateCall* GenerateCall::Start(grpc::CallbackServerContext* context, EngineWorker& worker,
                                  Metrics* metrics, std::atomic<int>* open_streams) {
  std::shared_ptr<GenerateCall> call(new GenerateCall(context, worker, metrics, open_streams));
  call->self_ = call;
  open_streams->fetch_add(1);
  call->StartRead(&call->request_bytes_);
  return call.get();
}

void GenerateCall::OnReadDone(bool ok) {
  if (!ok) {  // as in OnFinished: a deadline that passed before the message was read is no client cancel
    Fail(ToGrpcStatus(!context_->IsCancelled() ? InvalidArgument("Generate carried no GenerateRequest")
                      : DeadlinePassed()       ? Status(StatusCode::kDeadlineExceeded, "deadline exceeded")
                                               : bpt::Cancelled("cancelled by the client")));
    return;
  }
  bptserve::v1::GenerateRequest request;
  const Status parsed = ParseRequest(&request_bytes_, &request);
  request_bytes_.Clear();  // the prompt is in `request` now; a long one is not held twice
  if (!parsed.ok()) {
    Fail(ToGrpcStatus(parsed));
    return;
  }
  prefill_progress_ = request.options().prefill_progress();
  request_uses_prefix_cache_ = !request.options().bypass_prefix_cache();
  GenerationJob job;
  const Status converted = ToGenerationJob(request, worker_.default_sampling(), &job);
  if (!converted.ok()) {
    Fail(ToGrpcStatus(converted));
    return;
  }
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    job.sink = self_;
  }
  const Status submitted = worker_.Submit(std::move(job));
  if (!submitted.ok()) Fail(ToGrpcStatus(submitted));
}

bool GenerateCall::DeadlinePassed() const {
  // The client's timer fires at its deadline and sends a cancel; this server's copy of the deadline
  // starts from when it read the request, later by that message's transit, so the client's cancel
  // can arrive just before it (0.2 ms before, seen under load). A cancel that close is the deadline.
  constexpr auto kTransitSlack = std::chrono::milliseconds(100);
  return std::chrono::system_clock::now() + kTransitSlack >= deadline_;
}

void GenerateCall::Fail(const grpc::Status& status) {
  if (metrics_ != nullptr) metrics_->RecordError(status.error_code());
  Complete(status);
}

void GenerateCall::OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) {
  if (!prefill_progress_) return;
  bptserve::v1::GenerateResponse r;
  r.mutable_prefill_progress()->set_processed_tokens(processed_tokens);
  r.mutable_prefill_progress()->set_total_tokens(total_tokens);
  Enqueue(std::move(r));
}

void GenerateCall::OnToken(const TokenOutput& token) {
  bptserve::v1::GenerateResponse r;
  auto* chunk = r.mutable_tokens();
  chunk->add_token_ids(token.token_id);
  chunk->set_text(token.text);
  if (!token.top_logprobs.empty()) {
    auto* lp = chunk->add_logprobs();
    lp->set_logprob(token.logprob);
    for (const auto& [id, logprob] : token.top_logprobs) {
      auto* top = lp->add_top();
      top->set_token_id(id);
      top->set_logprob(logprob);
    }
  }
  Enqueue(std::move(r));
}

void GenerateCall::OnFinished(const StatusOr<GenerationResult>& result) {
  if (!result.ok()) {
    Fail(ToGrpcStatus(result.status()));
    return;
  }
  const GenerationResult& g = *result;
  if (g.finish_reason == FinishReason::kCancelled) {
    Fail(ToGrpcStatus(DeadlinePassed()     ? Status(StatusCode::kDeadlineExceeded, "deadline exceeded")
                      : cancelled_.load() ? bpt::Cancelled("cancelled by the client")
                                          : bpt::Cancelled("the server is shutting down")));
    return;
  }
  bptserve::v1::GenerateResponse r;
  auto* f = r.mutable_finished();
  f->set_reason(ToProto(g.finish_reason));
  f->mutable_usage()->set_prompt_tokens(g.prompt_tokens);
  f->mutable_usage()->set_completion_tokens(static_cast<int64_t>(g.token_ids.size()));
  f->mutable_usage()->set_cached_prompt_tokens(g.cached_prompt_tokens);
  f->mutable_timings()->set_queue_s(g.timings.queue_s);
  f->mutable_timings()->set_prefill_s(g.timings.prefill_s);
  f->mutable_timings()->set_time_to_first_token_s(g.timings.time_to_first_token_s);
  f->mutable_timings()->set_decode_s(g.timings.decode_s);
  if (metrics_ != nullptr)
    metrics_->RecordFinished(g, request_uses_prefix_cache_,
                             std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  Enqueue(std::move(r));
  Complete(grpc::Status::OK);
}

void GenerateCall::Enqueue(bptserve::v1::GenerateResponse response) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (write_failed_ || final_status_) return;
  // Tokens that arrive while a write is in flight travel together in one message.
  if (!pending_.empty() && response.has_tokens() && pending_.back().has_tokens()) {
    auto* into = pending_.back().mutable_tokens();
    into->mutable_token_ids()->MergeFrom(response.tokens().token_ids());
    into->mutable_text()->append(response.tokens().text());
    into->mutable_logprobs()->MergeFrom(response.tokens().logprobs());
  } else if (!pending_.empty() && response.has_prefill_progress() && pending_.back().has_prefill_progress()) {
    pending_.back() = std::move(response);
  } else {
    pending_.push_back(std::move(response));
  }
  WriteNextLocked();
}

void GenerateCall::Complete(const grpc::Status& status) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (final_status_) return;
  final_status_ = status;
  WriteNextLocked();
}

void GenerateCall::WriteNextLocked() {
  if (writing_ || finish_called_) return;
  if (!pending_.empty() && !write_failed_) {
    bool own_buffer = false;
    in_flight_.Clear();  // its last message is sent; the serializer writes into an empty buffer only
    const grpc::Status serialized =
        grpc::SerializationTraits<bptserve::v1::GenerateResponse>::Serialize(pending_.front(), &in_flight_, &own_buffer);
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

void GenerateCall::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  writing_ = false;
  if (!ok) {  // the client is gone: stop the work, drop what is queued, still finish once
    write_failed_ = true;
    cancelled_ = true;
    pending_.clear();
  }
  WriteNextLocked();
}

void GenerateCall::OnDone() {
  std::shared_ptr<GenerateCall> last_reference;
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    last_reference = std::move(self_);
  }
  open_streams_->fetch_sub(1);
}

}  // namespace bpt::server
