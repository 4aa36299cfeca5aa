// The whole server: the gRPC API and reflection (generic_dispatcher.h), health, the OpenAI HTTP
// API (openai_http_service.h), metrics and the engine worker. The port opens before the model loads, so liveness answers at once and
// readiness once it is loaded.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "engine.h"
#include "engine_worker.h"
#include "generic_dispatcher.h"
#include "http_server.h"
#include "metrics.h"
#include "openai_http_service.h"
#include "server_options.h"

namespace bpt::server {

inline constexpr char kReadinessService[] = "bptserve.v1.Inference";

class BptServer {
 public:
  explicit BptServer(ServerOptions options);
  ~BptServer();

  // Binds the ports and starts loading the model in the background.
  Status Start();
  // Blocks until the model is loaded (OK) or failed to load.
  Status WaitUntilLoaded();
  // After a successful load: the device and the memory plan, KV capacity in tokens included.
  std::string LoadedSummary();
  int port() const { return port_; }
  int metrics_port() const { return metrics_ ? metrics_->port() : -1; }
  int http_port() const { return http_server_ ? http_server_->port() : -1; }

  // SIGTERM: readiness NOT_SERVING, new requests UNAVAILABLE, in-flight ones get drain_seconds
  // to finish, the rest end CANCELLED; then the server stops.
  void Drain();

 private:
  ServerOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<GenericDispatcher> dispatcher_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<OpenAiHttpService> http_service_;
  std::unique_ptr<http::HttpServer> http_server_;

  std::thread loader_;
  std::mutex load_mu_;
  std::condition_variable load_cv_;
  bool load_done_ = false;
  Status load_status_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<EngineWorker> worker_;
};

}  // namespace bpt::server
