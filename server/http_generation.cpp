#include "http_generation.h"

#include "grpc_status.h"
#include "openai_error.h"

namespace bpt::server {
namespace {

// A prefill comment at most this often from progress events, and a heartbeat comment after this
// long without a write (the service's heartbeat looks every kHeartbeatPeriod, so no gap passes
// 2 s): well under the idle timeouts of common proxies (Envoy's stream idle timeout is 5
// minutes, nginx's proxy_read_timeout 60 s, cloud load balancers' 60-350 s).
constexpr auto kCommentInterval = std::chrono::seconds(1);
constexpr auto kQuietLimit = std::chrono::milliseconds(1500);

}  // namespace

std::vector<std::pair<std::string, std::string>> ErrorHeaders(int http_status) {
  if (http_status == 401) return {{"WWW-Authenticate", "Bearer"}};  // RFC 6750
  // A full queue and a drain pass: clients (the openai SDK among them) wait this long, then retry.
  if (http_status == 429 || http_status == 503) return {{"Retry-After", "1"}};
  return {};
}

HttpGeneration::HttpGeneration(std::shared_ptr<http::Exchange> exchange, openai::ResponseWriter writer, bool stream,
                               bool uses_prefix_cache, std::string_view route, Metrics* metrics,
                               std::function<void()> on_done)
    : exchange_(std::move(exchange)),
      stream_(stream),
      uses_prefix_cache_(uses_prefix_cache),
      route_(route),
      metrics_(metrics),
      start_(std::chrono::steady_clock::now()),
      on_done_(std::move(on_done)),
      writer_(std::move(writer)),
      last_write_(start_) {}

void HttpGeneration::ClientGone() {
  std::lock_guard<std::mutex> lock(mu_);
  client_gone_ = true;
}

bool HttpGeneration::Cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return client_gone_;
}

void HttpGeneration::WriteLocked(std::string bytes, std::chrono::steady_clock::time_point now) {
  if (bytes.empty()) return;
  exchange_->Write(std::move(bytes));
  last_write_ = now;
}

void HttpGeneration::PrefillCommentLocked(std::chrono::steady_clock::time_point now) {
  WriteLocked(openai::ResponseWriter::StreamComment("prefill " + std::to_string(prefilled_tokens_) + "/" +
                                                    std::to_string(prompt_tokens_)),
              now);
}

void HttpGeneration::OnAdmitted() {
  std::lock_guard<std::mutex> lock(mu_);
  admitted_ = true;
  if (!stream_ || client_gone_) return;
  exchange_->StartStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}});
  streaming_ = true;
  CountLocked(200);
  WriteLocked(writer_.StreamStart(), std::chrono::steady_clock::now());
}

void HttpGeneration::OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  prefilled_tokens_ = processed_tokens;
  prompt_tokens_ = total_tokens;
  const auto now = std::chrono::steady_clock::now();
  // The first report always goes out: a client sees the prefill start whatever the step time.
  if (streaming_ && !ended_ && (!prefill_reported_ || now - last_write_ >= kCommentInterval)) {
    prefill_reported_ = true;
    PrefillCommentLocked(now);
  }
}

void HttpGeneration::Heartbeat(std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!streaming_ || ended_ || client_gone_ || now - last_write_ < kQuietLimit) return;
  if (!prefill_reported_)  // waiting for the engine to start it
    WriteLocked(openai::ResponseWriter::StreamComment("queued"), now);
  else if (prefilled_tokens_ < prompt_tokens_)
    PrefillCommentLocked(now);
  else  // decoding, but the step is slow (a long prefill of another request in the same batch)
    WriteLocked(openai::ResponseWriter::StreamComment("keep-alive"), now);
}

void HttpGeneration::OnToken(const TokenOutput& token) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_ || client_gone_) return;
  if (streaming_)
    WriteLocked(writer_.StreamTokens({&token, 1}), std::chrono::steady_clock::now());
  else
    writer_.Add(token);
}

void HttpGeneration::FailLocked(const Status& status) {
  const openai::ApiError error = openai::FromStatus(status, route_ == "/v1/chat/completions" ? "messages" : "prompt");
  if (metrics_ != nullptr) metrics_->RecordError(ToGrpcStatus(status).error_code());
  if (client_gone_) {
    CountLocked(499);  // nothing reaches a client that left; nginx's 499 names that
  } else if (streaming_) {
    WriteLocked(openai::ResponseWriter::StreamError(error), std::chrono::steady_clock::now());
  } else {
    CountLocked(error.http_status);
    exchange_->Respond({error.http_status, "application/json", openai::ErrorBody(error), ErrorHeaders(error.http_status)});
  }
}

void HttpGeneration::CountLocked(int http_status) {
  if (counted_ || metrics_ == nullptr) return;
  counted_ = true;
  metrics_->CountHttpRequest(route_, http_status);
}

void HttpGeneration::EndLocked() {
  ended_ = true;
  if (streaming_) exchange_->EndStream();
  if (on_done_) std::exchange(on_done_, nullptr)();
}

void HttpGeneration::OnFinished(const StatusOr<GenerationResult>& result) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return;
  if (!result.ok()) {
    FailLocked(result.status());
  } else if (result->finish_reason == FinishReason::kCancelled) {
    FailLocked(client_gone_ ? bpt::Cancelled("cancelled by the client")
                            : Status(StatusCode::kUnavailable, "the server is shutting down"));
  } else {
    if (metrics_ != nullptr)
      metrics_->RecordFinished(*result, uses_prefix_cache_,
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    if (streaming_) {
      WriteLocked(writer_.StreamEnd(*result), std::chrono::steady_clock::now());
    } else if (client_gone_) {
      CountLocked(499);
    } else {
      CountLocked(200);
      exchange_->Respond({200, "application/json", writer_.Body(*result), {}});
    }
  }
  EndLocked();
}

}  // namespace bpt::server
