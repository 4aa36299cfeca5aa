#include "server/engine_worker.h"

namespace bpt::server {
namespace {

double SecondsBetween(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Forwards engine callbacks to the sink and asks the engine to stop once the sink is cancelled.
class SinkObserver : public GenerationObserver {
 public:
  SinkObserver(GenerationSink& sink, const Engine& engine, const std::atomic<bool>& cancel_all, Metrics* metrics)
      : sink_(sink), engine_(engine), cancel_all_(cancel_all), metrics_(metrics) {}
  bool OnPrefillProgress(int64_t processed, int64_t total) override {
    PublishKvUsage();
    sink_.OnPrefillProgress(processed, total);
    return !Stop();
  }
  bool OnToken(const TokenOutput& token) override {
    const auto now = std::chrono::steady_clock::now();
    if (has_last_ && metrics_ != nullptr) metrics_->ObserveInterTokenLatency(SecondsBetween(last_token_, now));
    last_token_ = now;
    has_last_ = true;
    PublishKvUsage();
    sink_.OnToken(token);
    return !Stop();
  }

 private:
  bool Stop() const { return sink_.Cancelled() || cancel_all_.load(); }
  void PublishKvUsage() {
    if (metrics_ != nullptr)
      metrics_->SetKvCache(engine_.kv_capacity_tokens() - engine_.kv_free_tokens(), engine_.kv_capacity_tokens());
  }
  GenerationSink& sink_;
  const Engine& engine_;
  const std::atomic<bool>& cancel_all_;
  Metrics* metrics_;
  std::chrono::steady_clock::time_point last_token_;
  bool has_last_ = false;
};

}  // namespace

EngineWorker::EngineWorker(Engine& engine, int max_queue, int64_t max_prompt_tokens, Metrics* metrics)
    : engine_(engine), max_queue_(max_queue), max_prompt_tokens_(max_prompt_tokens), metrics_(metrics) {
  if (metrics_ != nullptr) metrics_->SetKvCache(0, engine_.kv_capacity_tokens());
  thread_ = std::thread([this] { Loop(); });
}

EngineWorker::~EngineWorker() {
  CancelAll();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status EngineWorker::Submit(GenerationJob job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_) return Status(StatusCode::kUnavailable, "the server is shutting down");
    if (queue_.size() >= max_queue_)
      return ResourceExhausted("the request queue is full (" + std::to_string(max_queue_) +
                               " waiting, --max-queue); retry later");
    queue_.push_back({std::move(job), std::chrono::steady_clock::now()});
  }
  PublishCounts();
  cv_.notify_one();
  return OkStatus();
}

void EngineWorker::StopAccepting() {
  std::lock_guard<std::mutex> lock(mu_);
  accepting_ = false;
}

void EngineWorker::CancelAll() {
  cancel_all_ = true;
  cv_.notify_all();
}

bool EngineWorker::Idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.empty() && !running_job_;
}

void EngineWorker::PublishCounts() {
  if (metrics_ == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  metrics_->SetWaiting(static_cast<int>(queue_.size()));
  metrics_->SetRunning(running_job_ ? 1 : 0);
}

void EngineWorker::Loop() {
  for (;;) {
    Queued queued;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ with nothing left
      queued = std::move(queue_.front());
      queue_.pop_front();
      running_job_ = true;
    }
    PublishCounts();
    Run(queued);
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_job_ = false;
    }
    PublishCounts();
  }
}

void EngineWorker::Run(Queued& queued) {
  GenerationJob& job = queued.job;
  const double queue_s = SecondsBetween(queued.enqueued, std::chrono::steady_clock::now());
  if (job.sink->Cancelled() || cancel_all_.load()) {
    GenerationResult cancelled;
    cancelled.finish_reason = FinishReason::kCancelled;
    job.sink->OnFinished(cancelled, queue_s);
    return;
  }
  if (job.request.prompt.empty()) {
    auto ids = engine_.EncodePrompt(job.prompt_text);
    if (!ids.ok()) {
      job.sink->OnFinished(ids.status(), queue_s);
      return;
    }
    job.request.prompt = std::move(ids).value();
  }
  const int64_t prompt_tokens = static_cast<int64_t>(job.request.prompt.size());
  if (max_prompt_tokens_ > 0 && prompt_tokens > max_prompt_tokens_) {
    job.sink->OnFinished(InvalidArgument("prompt has " + std::to_string(prompt_tokens) +
                                         " tokens; this server accepts at most " +
                                         std::to_string(max_prompt_tokens_) + " (--max-prompt-tokens)"),
                         queue_s);
    return;
  }
  if (job.default_max_new_tokens) {  // unset: as much as fits, up to the default
    const int64_t room = std::min(engine_.max_model_len(), engine_.kv_capacity_tokens()) - prompt_tokens;
    job.request.stopping.max_new_tokens =
        static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(job.request.stopping.max_new_tokens, room)));
  }
  SinkObserver observer(*job.sink, engine_, cancel_all_, metrics_);
  const StatusOr<GenerationResult> result = engine_.Generate(job.request, &observer);
  if (metrics_ != nullptr) {
    metrics_->SetKvCache(engine_.kv_capacity_tokens() - engine_.kv_free_tokens(), engine_.kv_capacity_tokens());
    if (result.ok() && result->timings.prefill_s > 0)
      metrics_->SetPrefillTokensPerSecond(prompt_tokens / result->timings.prefill_s);
  }
  job.sink->OnFinished(result, queue_s);
}

}  // namespace bpt::server
