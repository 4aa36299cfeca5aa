#include "bptserve_server.h"

#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>


namespace bpt::server {
namespace {

StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(std::string("cannot read ") + flag + " '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  BPT_ASSIGN_OR_RETURN(pair.cert_chain, ReadFile(o.tls_cert, "--tls-cert"));
  BPT_ASSIGN_OR_RETURN(pair.private_key, ReadFile(o.tls_key, "--tls-key"));
  ssl.pem_key_cert_pairs.push_back(pair);
  if (!o.tls_client_ca.empty()) {
    BPT_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(o.tls_client_ca, "--tls-client-ca"));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

BptServer::BptServer(ServerOptions options) : options_(std::move(options)) {}

BptServer::~BptServer() {
  http_server_.reset();  // its connections close: their generations are cancelled
  if (http_service_) http_service_->StopParsing();  // its last parses still reach the worker
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
  if (loader_.joinable()) loader_.join();
  worker_.reset();  // ends every job before the engine goes
  http_service_.reset();  // after the worker: its last sinks report to the service
  if (server_) server_->Wait();
}

Status BptServer::Start() {
  BPT_ASSIGN_OR_RETURN(ApiKeyAuth auth, ApiKeyAuth::Load(options_.api_key_file));
  BPT_ASSIGN_OR_RETURN(auto credentials, Credentials(options_));
  // The context limit is not known before the model loads; token histograms reach 2^21.
  metrics_ = std::make_unique<Metrics>(int64_t{1} << 21, options_.engine.kv_tiers, options_.engine.device);
  if (options_.metrics_port >= 0) BPT_RETURN_IF_ERROR(metrics_->StartEndpoint(options_.host, options_.metrics_port));
  BPT_RETURN_IF_ERROR(Engine::CheckDevice(options_.engine.device));
  if (options_.http_port >= 0) {
    http_service_ = std::make_unique<OpenAiHttpService>(options_, auth, metrics_.get());
    http::HttpServerOptions http_options;
    http_options.host = options_.host;
    http_options.port = options_.http_port;
    http_options.tls_cert = options_.tls_cert;
    http_options.tls_key = options_.tls_key;
    http_options.tls_client_ca = options_.tls_client_ca;
    http_options.max_body_bytes = static_cast<uint64_t>(options_.max_message_mb) << 20;
    BPT_ASSIGN_OR_RETURN(http_server_, http::HttpServer::Start(http_options, http_service_.get()));
  }
  dispatcher_ = std::make_unique<GenericDispatcher>(options_, std::move(auth), metrics_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.host + ":" + std::to_string(options_.port), credentials, &port_);
  builder.RegisterCallbackGenericService(dispatcher_.get());
  builder.SetMaxReceiveMessageSize(options_.max_message_mb * 1024 * 1024);
  // A prefill can run for minutes with nothing to send: keep idle connections up, accept the
  // client's keepalive pings, and ping clients that vanished.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  // No window growth from bandwidth probes: a stream whose message is not being read (one being
  // refused unauthenticated) can then make the server buffer only its initial 64 KiB window. A
  // message being read still arrives at full speed: a pending read opens the window to its size.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0)
    return Status(StatusCode::kUnavailable, "cannot listen on " + options_.host + ":" + std::to_string(options_.port));
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus("", true);                  // liveness
  health->SetServingStatus(kReadinessService, false);  // readiness, once the model is loaded

  loader_ = std::thread([this] {
    auto engine = Engine::Create(options_.engine);
    std::lock_guard<std::mutex> lock(load_mu_);
    if (engine.ok()) {
      engine_ = std::move(engine).value();
      // The pool holds whole blocks, so its capacity divides exactly (on the CPU device too).
      const int block_size = engine_->options().kv_cache.block_size;
      metrics_->SetCacheConfig(block_size, engine_->kv_capacity_tokens() / block_size,
                               ElementTypeName(engine_->model_info().kv_dtype));
      worker_ = std::make_unique<EngineWorker>(*engine_, options_.max_prompt_tokens,
                                               options_.tokenizer_threads, metrics_.get());
      dispatcher_->SetReady(engine_.get(), worker_.get());
      if (http_service_) http_service_->SetReady(engine_.get(), worker_.get());
      server_->GetHealthCheckService()->SetServingStatus(kReadinessService, true);
    } else {
      load_status_ = engine.status();
    }
    load_done_ = true;
    load_cv_.notify_all();
  });
  return OkStatus();
}

Status BptServer::WaitUntilLoaded() {
  std::unique_lock<std::mutex> lock(load_mu_);
  load_cv_.wait(lock, [&] { return load_done_; });
  return load_status_;
}

std::string BptServer::LoadedSummary() {
  std::lock_guard<std::mutex> lock(load_mu_);
  if (engine_ == nullptr) return "no model loaded";
  const MemoryPlan plan = engine_->memory_plan();
  constexpr double kMiB = 1024.0 * 1024.0;
  std::ostringstream s;
  s.precision(1);
  const ModelInfo& info = engine_->model_info();
  s << std::fixed << "device " << info.device << " (" << info.dtype << "): weights " << plan.weight_bytes / kMiB
    << " MiB " << ElementTypeName(info.weight_dtype) << ", workspace " << plan.workspace_bytes / kMiB
    << " MiB, KV cache " << plan.kv_capacity_tokens << " tokens ("
    << plan.kv_capacity_tokens * plan.kv_bytes_per_token / kMiB << " MiB " << ElementTypeName(info.kv_dtype)
    << "), attention " << info.attention_kernels;
  return s.str();
}

void BptServer::Drain() {
  server_->GetHealthCheckService()->SetServingStatus(kReadinessService, false);
  dispatcher_->StopAccepting();
  if (http_service_) http_service_->StopAccepting();
  {
    std::lock_guard<std::mutex> lock(load_mu_);
    if (worker_) worker_->StopAccepting();
  }
  // In flight means the engine still works on it, or its stream has not delivered its end.
  auto idle = [&] {
    std::lock_guard<std::mutex> lock(load_mu_);
    return (!worker_ || worker_->Idle()) && dispatcher_->open_streams() == 0 &&
           (!http_service_ || http_service_->open_generations() == 0);
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.drain_seconds);
  while (!idle() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  {
    std::lock_guard<std::mutex> lock(load_mu_);
    if (worker_) {
      worker_->CancelAll();  // the rest end CANCELLED
      while (!worker_->Idle()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      // The KV tiers get what is left of the drain time for the writes still queued (chunks of
      // the requests that just ended), on the engine's thread.
      if (!engine_->model_info().kv_tiers.empty()) {
        const bool flushed =
            worker_->FlushKvTiers(std::chrono::time_point_cast<std::chrono::steady_clock::duration>(deadline));
        std::cout << (flushed ? "KV tiers: every queued write done"
                              : "KV tiers: the drain time ended with writes still queued; they are dropped")
                  << std::endl;
      }
    }
  }
  // Streams still open now belong to clients that stopped reading: a short grace, then cut.
  const auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (http_server_ && http_server_->unsent_responses() > 0 && std::chrono::steady_clock::now() < grace)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}
}  // namespace bpt::server
