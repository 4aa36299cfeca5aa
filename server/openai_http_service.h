// The OpenAI-compatible HTTP API over the same engine worker as gRPC: POST /v1/completions and
// /v1/chat/completions, GET /v1/models, and the probes GET /health (liveness) and /ready
// (readiness, as the gRPC health split). A request is admitted from its head alone (route,
// method, API key, body size, model loaded and not draining), before its body is read; the
// body is parsed on the transport's thread, prompts are tokenized on the worker's pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "api_key_auth.h"
#include "engine.h"
#include "engine_worker.h"
#include "http_generation.h"
#include "http_server.h"
#include "metrics.h"
#include "server_options.h"
#include "tokenizer_pool.h"

namespace bpt::server {

class OpenAiHttpService final : public http::Handler {
 public:
  OpenAiHttpService(const ServerOptions& options, ApiKeyAuth auth, Metrics* metrics);
  ~OpenAiHttpService() override;

  // The model is loaded: requests are served from now on.
  void SetReady(Engine* engine, EngineWorker* worker);
  // Draining: readiness and new generations get 503.
  void StopAccepting() { accepting_ = false; }
  // Generations whose response has not ended.
  int open_generations() const;
  // Finishes the bodies being parsed (each then submitted or refused) and parses no more: before
  // the worker goes, since each parse ends in EngineWorker::Submit.
  void StopParsing();

  std::optional<http::Response> OnHead(const http::RequestHead& head) override;
  void OnRequest(const http::RequestHead& head, std::string body, std::shared_ptr<http::Exchange> exchange) override;
  http::Response TransportError(const http::RequestHead* head, int status, const std::string& message) override;

 private:
  // What a path serves: its metrics label and the one method it takes.
  struct Route {
    std::string_view label;
    std::string_view method;
  };
  static const Route* FindRoute(std::string_view path);
  // A response counted in bptserve_http_requests_total.
  http::Response Counted(std::string_view route, http::Response response) const;
  http::Response Error(std::string_view route, int status, std::string message, std::string type,
                       std::string param = "", std::string code = "") const;
  // cache_salt: the request's GenerationRequest::cache_salt (its API key's, when salted per key).
  void StartGeneration(const Route& route, std::string_view body, const std::string& cache_salt,
                       std::shared_ptr<http::Exchange> exchange);
  // Writes comment lines on quiet streams (http_generation.h) until the service ends.
  void HeartbeatLoop();

  const ServerOptions options_;
  const ApiKeyAuth auth_;
  Metrics* const metrics_;
  const std::string model_name_;
  const int64_t created_;  // the model's `created` in /v1/models: when this server started
  std::atomic<Engine*> engine_{nullptr};
  std::atomic<EngineWorker*> worker_{nullptr};
  std::atomic<bool> accepting_{true};
  std::vector<std::string> token_texts_;  // [vocab_size]: each token's text, set with the engine

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  uint64_t next_id_ = 0;
  std::map<uint64_t, std::shared_ptr<HttpGeneration>> generations_;  // open ones, for the heartbeat
  std::unique_ptr<TokenizerPool> parse_pool_;  // bodies to requests, off the io threads
  std::thread heartbeat_;
};

}  // namespace bpt::server
