// One OpenAI API generation (completions or chat) over HTTP: the engine worker's sink, writing
// through the transport's Exchange. Refusals before the engine admits the job (a prompt too
// long, the queue full) are whole error responses with their own status; once admitted, a
// stream is 200 with SSE chunks, comment lines while the prompt is prefilled (so proxies with
// idle timeouts keep a healthy request), and `data: [DONE]`; a whole response is sent at the end.
// A client that disconnects cancels the job. Every request ends with exactly one response or
// stream end, counted once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine_worker.h"
#include "http_server.h"
#include "metrics.h"
#include "openai_response.h"

namespace bpt::server {

// What an error response carries beside its body: the auth scheme with a 401, Retry-After with
// a 429 or 503.
std::vector<std::pair<std::string, std::string>> ErrorHeaders(int http_status);

class HttpGeneration final : public GenerationSink {
 public:
  // on_done runs once, after the exchange's last write is queued.
  HttpGeneration(std::shared_ptr<http::Exchange> exchange, openai::ResponseWriter writer, bool stream,
                 bool uses_prefix_cache, std::string_view route, Metrics* metrics, std::function<void()> on_done);

  // The transport saw the client leave: the job ends cancelled within one engine step.
  void ClientGone();
  // From the service's heartbeat: a stream quiet for kQuietLimit gets a comment line.
  void Heartbeat(std::chrono::steady_clock::time_point now);

  // GenerationSink, on the engine worker's thread (OnFinished also where Submit refused).
  bool Cancelled() const override;
  void OnAdmitted() override;
  void OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) override;
  void OnToken(const TokenOutput& token) override;
  void OnFinished(const StatusOr<GenerationResult>& result) override;

 private:
  void WriteLocked(std::string bytes, std::chrono::steady_clock::time_point now);
  void PrefillCommentLocked(std::chrono::steady_clock::time_point now);
  // A whole error response before admission, or the error event that ends an admitted stream.
  void FailLocked(const Status& status);
  void EndLocked();
  // bptserve_http_requests_total, once per request.
  void CountLocked(int http_status);

  const std::shared_ptr<http::Exchange> exchange_;
  const bool stream_;
  const bool uses_prefix_cache_;
  const std::string_view route_;
  Metrics* const metrics_;
  const std::chrono::steady_clock::time_point start_;
  std::function<void()> on_done_;

  mutable std::mutex mu_;
  openai::ResponseWriter writer_;
  bool client_gone_ = false;
  bool admitted_ = false;
  bool streaming_ = false;  // the 200 and the SSE headers are sent
  bool prefill_reported_ = false;
  bool counted_ = false;
  bool ended_ = false;
  int64_t prefilled_tokens_ = 0, prompt_tokens_ = 0;  // the last progress the engine reported
  std::chrono::steady_clock::time_point last_write_;
};

}  // namespace bpt::server
