#include "openai_http_service.h"

#include <ctime>
#include <random>
#include <variant>

#include "openai_error.h"
#include "openai_request.h"
#include "openai_response.h"

namespace bpt::server {
namespace {

constexpr std::string_view kCompletions = "/v1/completions";
constexpr std::string_view kChatCompletions = "/v1/chat/completions";
constexpr auto kHeartbeatPeriod = std::chrono::milliseconds(500);
// Request bodies (up to --max-message-mb of JSON: a second or more) are parsed here, never on
// the transport's io threads, which every other connection needs.
constexpr int kParseThreads = 2;

bool IsGeneration(std::string_view route) { return route == kCompletions || route == kChatCompletions; }

// The request metrics count refusals by gRPC code, whichever API refused.
grpc::StatusCode GrpcCodeOfHttpStatus(int status) {
  switch (status) {
    case 400: return grpc::StatusCode::INVALID_ARGUMENT;
    case 401: return grpc::StatusCode::UNAUTHENTICATED;
    case 404: return grpc::StatusCode::NOT_FOUND;
    case 405: return grpc::StatusCode::UNIMPLEMENTED;
    case 408: case 504: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case 413: case 429: case 431: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 499: return grpc::StatusCode::CANCELLED;
    case 503: return grpc::StatusCode::UNAVAILABLE;
    default: return grpc::StatusCode::INTERNAL;
  }
}

std::string ErrorType(int status) {
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

// "cmpl-" / "chatcmpl-" and 24 hex digits, as OpenAI's ids look; unique enough to correlate logs.
std::string NewId(std::string_view prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  for (int i = 0; i < 24; ++i) id += kHex[rng() & 15];
  return id;
}

}  // namespace

OpenAiHttpService::OpenAiHttpService(const ServerOptions& options, ApiKeyAuth auth, Metrics* metrics)
    : options_(options),
      auth_(std::move(auth)),
      metrics_(metrics),
      model_name_(options.ModelName()),
      created_(static_cast<int64_t>(std::time(nullptr))),
      parse_pool_(std::make_unique<TokenizerPool>(kParseThreads, std::max(options.engine.scheduler.max_queue, 1))),
      heartbeat_([this] { HeartbeatLoop(); }) {}

OpenAiHttpService::~OpenAiHttpService() {
  StopParsing();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  heartbeat_.join();
}

void OpenAiHttpService::StopParsing() { parse_pool_.reset(); }

void OpenAiHttpService::SetReady(Engine* engine, EngineWorker* worker) {
  // Logprobs name every alternative of every token on the worker's thread: each token's text is
  // looked up, not decoded there. Empty in token-ids mode (no tokenizer).
  std::vector<std::string> texts(static_cast<size_t>(engine->model_info().vocab_size));
  for (size_t id = 0; id < texts.size(); ++id) {
    const auto token = static_cast<int32_t>(id);
    StatusOr<std::string> text = engine->Decode(std::span<const int32_t>(&token, 1));
    if (text.ok()) texts[id] = std::move(text).value();
  }
  token_texts_ = std::move(texts);
  worker_ = worker;
  engine_ = engine;
}

int OpenAiHttpService::open_generations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(generations_.size());
}

const OpenAiHttpService::Route* OpenAiHttpService::FindRoute(std::string_view path) {
  static const Route kRoutes[] = {{kCompletions, "POST"}, {kChatCompletions, "POST"}, {"/v1/models", "GET"},
                                  {"/health", "GET"},     {"/ready", "GET"}};
  for (const Route& r : kRoutes)
    if (r.label == path) return &r;
  return nullptr;
}

http::Response OpenAiHttpService::Counted(std::string_view route, http::Response response) const {
  if (metrics_ != nullptr) {
    metrics_->CountHttpRequest(route, response.status);
    if (IsGeneration(route) && response.status >= 400) metrics_->RecordError(GrpcCodeOfHttpStatus(response.status));
  }
  return response;
}

http::Response OpenAiHttpService::Error(std::string_view route, int status, std::string message, std::string type,
                                        std::string param, std::string code) const {
  const openai::ApiError error{status, std::move(message), std::move(type), std::move(param), std::move(code)};
  return Counted(route, {status, "application/json", openai::ErrorBody(error), ErrorHeaders(status)});
}

std::optional<http::Response> OpenAiHttpService::OnHead(const http::RequestHead& head) {
  const Route* route = FindRoute(head.path);
  if (route == nullptr)
    return Error("other", 404, "Invalid URL (" + head.method + " " + head.path + ")", "invalid_request_error");
  // HEAD is GET without the body (the probes of some load balancers use it).
  if (head.method != route->method && !(route->method == "GET" && head.method == "HEAD")) {
    http::Response refused = Error(route->label, 405, head.method + " is not allowed on " + head.path + "; use " +
                                   std::string(route->method), "invalid_request_error");
    refused.headers.emplace_back("Allow", std::string(route->method));
    return refused;
  }
  // The probes answer without a key, as gRPC health does: kubelets carry none.
  if (route->label == "/health" || route->label == "/ready") return std::nullopt;
  const Status auth = auth_.CheckAuthorization(head.Headers("authorization"));
  if (!auth.ok()) return Error(route->label, 401, auth.message(), "invalid_request_error", "", "invalid_api_key");
  if (engine_.load() == nullptr)
    return Error(route->label, 503, "the model is still loading; retry later", "server_error");
  if (!accepting_.load()) return Error(route->label, 503, "the server is shutting down", "server_error");
  const uint64_t limit = static_cast<uint64_t>(options_.max_message_mb) << 20;
  if (head.content_length && *head.content_length > limit)
    return Error(route->label, 413,
                 "the request body has " + std::to_string(*head.content_length) + " bytes, more than " +
                     std::to_string(limit) + " (--max-message-mb " + std::to_string(options_.max_message_mb) + ")",
                 "invalid_request_error", "", "request_too_large");
  return std::nullopt;
}

http::Response OpenAiHttpService::TransportError(const http::RequestHead* head, int status, const std::string& message) {
  const Route* route = head != nullptr ? FindRoute(head->path) : nullptr;
  return Error(route != nullptr ? route->label : "other", status, message, ErrorType(status));
}

void OpenAiHttpService::OnRequest(const http::RequestHead& head, std::string body,
                                  std::shared_ptr<http::Exchange> exchange) {
  const Route& route = *FindRoute(head.path);  // OnHead refused every other path
  if (route.label == "/health") {
    exchange->Respond(Counted(route.label, {200, "application/json", "{}", {}}));
  } else if (route.label == "/ready") {
    if (engine_.load() == nullptr)
      exchange->Respond(Error(route.label, 503, "the model is still loading", "server_error"));
    else if (!accepting_.load())
      exchange->Respond(Error(route.label, 503, "the server is shutting down", "server_error"));
    else
      exchange->Respond(Counted(route.label, {200, "application/json", "{}", {}}));
  } else if (route.label == "/v1/models") {
    exchange->Respond(Counted(route.label, {200, "application/json",
                                            openai::ResponseWriter::ModelList(
                                                model_name_, created_, engine_.load()->model_info().max_model_len),
                                            {}}));
  } else {
    auto shared_body = std::make_shared<std::string>(std::move(body));
    // The key was checked from the head (OnHead); its salt goes with the request.
    std::string salt = options_.kv_cache_salt_per_api_key ? auth_.CacheSalt(head.Headers("authorization")) : "";
    const bool queued = parse_pool_->TryRun([this, &route, shared_body, exchange, salt = std::move(salt)] {
      StartGeneration(route, *shared_body, salt, exchange);
      return std::function<void()>([] {});
    });
    if (!queued)
      exchange->Respond(Error(route.label, 429,
                              "too many requests are being parsed (" + std::to_string(options_.engine.scheduler.max_queue) +
                                  ", --max-queue); retry later",
                              "rate_limit_error", "", "rate_limit_exceeded"));
  }
}

void OpenAiHttpService::StartGeneration(const Route& route, std::string_view body, const std::string& cache_salt,
                                        std::shared_ptr<http::Exchange> exchange) {
  Engine* const engine = engine_.load();
  EngineWorker* const worker = worker_.load();
  if (!accepting_.load()) {
    exchange->Respond(Error(route.label, 503, "the server is shutting down", "server_error"));
    return;
  }
  const openai::Route api = route.label == kCompletions ? openai::Route::kCompletions : openai::Route::kChatCompletions;
  const ModelInfo& info = engine->model_info();
  auto parsed = openai::ParseRequest(api, body, worker->default_sampling(),
                                     {static_cast<int>(info.max_model_len), static_cast<int>(info.vocab_size)});
  if (const auto* error = std::get_if<openai::ApiError>(&parsed)) {
    exchange->Respond(Counted(route.label, {error->http_status, "application/json", openai::ErrorBody(*error), {}}));
    return;
  }
  openai::ParsedRequest& request = std::get<openai::ParsedRequest>(parsed);
  if (!request.model.empty() && request.model != model_name_) {
    exchange->Respond(Error(route.label, 404,
                            "The model '" + request.model + "' does not exist; this server serves '" + model_name_ + "'",
                            "invalid_request_error", "model", "model_not_found"));
    return;
  }

  GenerationJob job;
  job.request = std::move(request.request);
  job.request.cache_salt = cache_salt;
  job.default_max_new_tokens = request.default_max_new_tokens;
  if (api == openai::Route::kChatCompletions)
    job.chat = ChatPrompt{std::move(request.messages), /*continue_final_message=*/false};
  else if (!request.prompt_ids.empty())
    job.request.prompt = std::move(request.prompt_ids);
  else
    job.prompt_text = std::move(request.prompt_text);

  openai::ResponseContext context;
  context.route = api;
  context.id = NewId(api == openai::Route::kCompletions ? "cmpl-" : "chatcmpl-");
  context.created = static_cast<int64_t>(std::time(nullptr));
  context.model = model_name_;
  context.include_usage = request.include_usage;
  context.logprobs = request.logprobs;
  context.top_logprobs = job.request.sampling.top_logprobs;
  context.token_text = [this](int32_t id) {
    return id >= 0 && static_cast<size_t>(id) < token_texts_.size() ? token_texts_[static_cast<size_t>(id)] : std::string();
  };

  uint64_t key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    key = next_id_++;
  }
  auto generation = std::make_shared<HttpGeneration>(
      exchange, openai::ResponseWriter(std::move(context)), request.stream, job.request.use_prefix_cache, route.label,
      metrics_, [this, key] {
        std::lock_guard<std::mutex> lock(mu_);
        generations_.erase(key);
      });
  {
    std::lock_guard<std::mutex> lock(mu_);
    generations_.emplace(key, generation);
  }
  exchange->SetOnClose([weak = std::weak_ptr<HttpGeneration>(generation)] {
    if (auto g = weak.lock()) g->ClientGone();
  });
  job.sink = generation;
  const Status submitted = worker->Submit(std::move(job));
  if (!submitted.ok()) generation->OnFinished(submitted);
}

void OpenAiHttpService::HeartbeatLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, kHeartbeatPeriod, [&] { return stopping_; });
    std::vector<std::shared_ptr<HttpGeneration>> open;
    for (const auto& [key, generation] : generations_) open.push_back(generation);
    // Each generation takes its own lock: never while holding this one (on_done takes them the
    // other way round).
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    for (const auto& generation : open) generation->Heartbeat(now);
    open.clear();
    lock.lock();
  }
}

}  // namespace bpt::server
