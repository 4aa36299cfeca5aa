#include "engine_worker.h"

#include <utility>

namespace bpt::server {
namespace {

double SecondsBetween(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

// Forwards engine callbacks to the job's sink; cancelled when the sink is, or on CancelAll.
class EngineWorker::JobObserver : public GenerationObserver {
 public:
  JobObserver(EngineWorker& worker, std::shared_ptr<GenerationSink> sink, double inbox_s,
              const std::atomic<bool>& cancel_all, Metrics* metrics)
      : worker_(worker), sink_(std::move(sink)), inbox_s_(inbox_s), cancel_all_(cancel_all), metrics_(metrics) {}
  bool Cancelled() const override { return sink_->Cancelled() || cancel_all_.load(); }
  bool OnPrefillProgress(int64_t processed, int64_t total) override {
    sink_->OnPrefillProgress(processed, total);
    return true;
  }
  bool OnToken(const TokenOutput& token) override {
    const auto now = std::chrono::steady_clock::now();
    if (has_last_ && metrics_ != nullptr) metrics_->ObserveInterTokenLatency(SecondsBetween(last_token_, now));
    last_token_ = now;
    has_last_ = true;
    sink_->OnToken(token);
    return true;
  }
  void OnFinished(const StatusOr<GenerationResult>& result) override {
    worker_.PublishGauges();  // the engine has released the request's blocks already
    if (result.ok()) {  // the time in the worker's inbox is queueing too
      GenerationResult r = *result;
      r.timings.queue_s += inbox_s_;
      r.timings.time_to_first_token_s += inbox_s_;
      sink_->OnFinished(r);
    } else {
      sink_->OnFinished(result);
    }
    done = true;
  }
  bool done = false;

 private:
  EngineWorker& worker_;
  std::shared_ptr<GenerationSink> sink_;
  const double inbox_s_;
  const std::atomic<bool>& cancel_all_;
  Metrics* metrics_;
  std::chrono::steady_clock::time_point last_token_;
  bool has_last_ = false;
};

Status EngineWorker::QueueFull() const {
  return ResourceExhausted("the request queue is full (" + std::to_string(max_queue_) +
                           " waiting, --max-queue); retry later");
}

EngineWorker::EngineWorker(Engine& engine, int64_t max_prompt_tokens, int tokenizer_threads, Metrics* metrics,
                           PromptEncodeFn encode)
    : engine_(engine),
      max_queue_(engine.options().scheduler.max_queue),
      max_prompt_tokens_(max_prompt_tokens),
      metrics_(metrics),
      encode_(encode ? std::move(encode) : [&engine](std::string_view text, bool add_bos, int64_t max_tokens) {
        return engine.EncodePrompt(text, max_tokens, add_bos);
      }) {
  if (metrics_ != nullptr) metrics_->SetKvCache(0, engine_.kv_capacity_tokens());
  PublishKvTierStats();  // what a disk tier holds from earlier runs, before any request (no other thread yet)
  tokenizer_pool_ = std::make_unique<TokenizerPool>(tokenizer_threads, std::max<size_t>(max_queue_, 1));
  thread_ = std::thread([this] { Loop(); });
}

EngineWorker::~EngineWorker() {
  CancelAll();
  tokenizer_pool_.reset();  // each tokenization ends in the inbox or refused; the loop ends the rest
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status EngineWorker::Submit(GenerationJob job) {
  const bool needs_tokens = job.request.prompt.empty();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_) return Status(StatusCode::kUnavailable, "the server is shutting down");
    // The pool and the inbox are bounded here; the engine's own queue when the worker admits.
    if (needs_tokens) {
      if (tokenizing_ >= max_queue_) return QueueFull();
      ++tokenizing_;
    } else {
      if (inbox_.size() + admitting_ >= max_queue_) return QueueFull();
      inbox_.push_back({std::move(job), std::chrono::steady_clock::now(), std::nullopt});
    }
  }
  if (needs_tokens) {
    auto shared = std::make_shared<GenerationJob>(std::move(job));
    const auto submitted = std::chrono::steady_clock::now();
    auto task = [this, shared, submitted] {
      auto refused = std::make_shared<std::optional<Status>>(EncodeJobPrompt(*shared));
      return std::function<void()>(
          [this, shared, submitted, refused] { QueueEncoded(std::move(*shared), submitted, std::move(*refused)); });
    };
    if (!tokenizer_pool_->TryRun(task)) {
      std::lock_guard<std::mutex> lock(mu_);
      --tokenizing_;
      return QueueFull();
    }
    return OkStatus();
  }
  cv_.notify_one();
  return OkStatus();
}

Status EngineWorker::TokenizerQueueFull() const {
  return ResourceExhausted("the tokenizer queue is full (" + std::to_string(max_queue_) + ", --max-queue); retry later");
}

void EngineWorker::TokenizeText(std::string_view text, bool add_bos,
                                std::function<void(StatusOr<std::vector<int32_t>>)> done) {
  const int64_t limit = PromptTokenLimit();
  auto task = [this, text, add_bos, limit, done] {
    auto ids = std::make_shared<StatusOr<std::vector<int32_t>>>(encode_(text, add_bos, limit));
    if (!ids->ok() && ids->status().code() == StatusCode::kOutOfRange)
      *ids = PromptTooLong("text", "more than " + std::to_string(limit));
    return std::function<void()>([ids, done] { done(std::move(*ids)); });
  };
  if (!tokenizer_pool_->TryRun(task)) done(TokenizerQueueFull());
}

void EngineWorker::TokenizeChat(ChatPrompt chat, std::function<void(StatusOr<TokenizedPrompt>)> done) {
  const int64_t limit = PromptTokenLimit();
  auto shared = std::make_shared<ChatPrompt>(std::move(chat));
  auto task = [this, shared, limit, done] {
    auto prompt = std::make_shared<StatusOr<TokenizedPrompt>>(EncodeChat(*shared, limit));
    return std::function<void()>([prompt, done] { done(std::move(*prompt)); });
  };
  if (!tokenizer_pool_->TryRun(task)) done(TokenizerQueueFull());
}

StatusOr<TokenizedPrompt> EngineWorker::EncodeChat(const ChatPrompt& chat, int64_t limit) const {
  TokenizedPrompt prompt;
  StatusOr<std::string> rendered = engine_.RenderChat(chat.messages, chat.continue_final_message);
  // The template refused the conversation (raise_exception, a role it rejects): the messages are
  // at fault.
  if (rendered.status().code() == StatusCode::kInvalidArgument)
    return InvalidArgument("chat.messages: " + rendered.status().message());
  if (!rendered.ok()) return rendered.status();
  prompt.text = std::move(rendered).value();
  // As transformers' apply_chat_template: add_special_tokens=False, the template wrote them.
  StatusOr<std::vector<int32_t>> ids = encode_(prompt.text, /*add_bos=*/false, limit);
  if (!ids.ok() && ids.status().code() == StatusCode::kOutOfRange)
    return PromptTooLong("the rendered chat", "more than " + std::to_string(limit));
  if (!ids.ok()) return ids.status();
  prompt.ids = std::move(ids).value();
  return prompt;
}

void EngineWorker::DetokenizeIds(std::span<const int32_t> ids, bool skip_special_tokens,
                                 std::function<void(StatusOr<std::string>)> done) {
  auto task = [this, ids, skip_special_tokens, done] {
    auto text = std::make_shared<StatusOr<std::string>>(engine_.Decode(ids, skip_special_tokens));
    return std::function<void()>([text, done] { done(std::move(*text)); });
  };
  if (!tokenizer_pool_->TryRun(task)) done(TokenizerQueueFull());
}

int64_t EngineWorker::PromptTokenLimit() const {
  const int64_t context = engine_.model_info().max_model_len - 1;  // at least one token is generated
  return max_prompt_tokens_ > 0 ? std::min(max_prompt_tokens_, context) : context;
}

Status EngineWorker::PromptTooLong(const std::string& what, const std::string& count) const {
  if (max_prompt_tokens_ > 0 && max_prompt_tokens_ < engine_.model_info().max_model_len)
    return InvalidArgument(what + " has " + count + " tokens; this server accepts at most " +
                           std::to_string(max_prompt_tokens_) + " (--max-prompt-tokens)");
  return InvalidArgument(what + " has " + count + " tokens; the model's context limit is " +
                         std::to_string(engine_.model_info().max_model_len) + " tokens including at least one generated");
}

std::optional<Status> EngineWorker::EncodeJobPrompt(GenerationJob& job) const {
  if (job.sink->Cancelled() || cancel_all_.load()) return std::nullopt;  // a cancelled job ends in Admit
  const int64_t limit = PromptTokenLimit();
  if (job.chat) {
    StatusOr<TokenizedPrompt> prompt = EncodeChat(*job.chat, limit);
    if (!prompt.ok()) return prompt.status();
    job.request.prompt = std::move(prompt->ids);
    job.chat.reset();  // one copy of the prompt: its ids
    return std::nullopt;
  }
  StatusOr<std::vector<int32_t>> ids = encode_(job.prompt_text, /*add_bos=*/true, limit);
  if (ids.ok()) {
    job.request.prompt = std::move(ids).value();
    std::string().swap(job.prompt_text);  // one copy of the prompt: its ids
    return std::nullopt;
  }
  if (ids.status().code() == StatusCode::kOutOfRange) return PromptTooLong("prompt", "more than " + std::to_string(limit));
  return ids.status();
}

void EngineWorker::QueueEncoded(GenerationJob job, std::chrono::steady_clock::time_point submitted,
                                std::optional<Status> refused) {
  {  // refused or not, the worker ends it: gauges and every OnFinished stay on its thread
    std::lock_guard<std::mutex> lock(mu_);
    --tokenizing_;
    inbox_.push_back({std::move(job), submitted, std::move(refused)});
  }
  cv_.notify_one();
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
  return inbox_.empty() && admitting_ == 0 && in_engine_ == 0 && tokenizing_ == 0;
}

std::optional<StatusOr<GenerationResult>> EngineWorker::Admit(Inbound& inbound) {
  GenerationJob& job = inbound.job;
  const double inbox_s = SecondsBetween(inbound.enqueued, std::chrono::steady_clock::now());
  if (inbound.refused) return *inbound.refused;
  if (job.sink->Cancelled() || cancel_all_.load()) {
    GenerationResult cancelled;
    cancelled.finish_reason = FinishReason::kCancelled;
    return cancelled;
  }
  const int64_t prompt_tokens = static_cast<int64_t>(job.request.prompt.size());
  if (max_prompt_tokens_ > 0 && prompt_tokens > max_prompt_tokens_) return PromptTooLong("prompt", std::to_string(prompt_tokens));
  if (job.default_max_new_tokens) {  // unset: as much as fits, up to the default
    const int64_t room = std::min(engine_.model_info().max_model_len, engine_.kv_capacity_tokens()) - prompt_tokens;
    job.request.stopping.max_new_tokens =
        static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(job.request.stopping.max_new_tokens, room)));
  }
  auto observer = std::make_unique<JobObserver>(*this, job.sink, inbox_s, cancel_all_, metrics_);
  const Status submitted = engine_.Submit(std::move(job.request), observer.get());
  if (!submitted.ok()) return submitted;
  job.sink->OnAdmitted();
  observers_.emplace(observer.get(), std::move(observer));
  std::lock_guard<std::mutex> lock(mu_);
  in_engine_ = observers_.size();
  return std::nullopt;
}

void EngineWorker::PublishGauges() {
  if (metrics_ == nullptr) return;
  size_t inbox;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox = inbox_.size() + tokenizing_;
  }
  metrics_->SetRunning(static_cast<int>(engine_.num_running()));
  metrics_->SetWaiting(static_cast<int>(engine_.num_waiting() + inbox));
  metrics_->SetKvCache(engine_.kv_capacity_tokens() - engine_.kv_free_tokens(), engine_.kv_capacity_tokens());
}

void EngineWorker::PublishKvTierStats() {
  if (metrics_ == nullptr || engine_.model_info().kv_tiers.empty()) return;
  metrics_->RecordKvTiers(engine_.TakeKvTierStats());
}

bool EngineWorker::FlushKvTiers(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stop_) return false;
  flushed_.reset();
  flush_deadline_ = deadline;
  cv_.notify_all();
  flush_cv_.wait(lock, [&] { return flushed_.has_value(); });
  return *flushed_;
}

void EngineWorker::FlushIfAsked() {
  std::optional<std::chrono::steady_clock::time_point> deadline;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Only once no job is left: the engine's flush does not step, so a job would wait through it.
    if (!flush_deadline_ || !inbox_.empty() || admitting_ > 0 || in_engine_ > 0) return;
    deadline = std::exchange(flush_deadline_, std::nullopt);
  }
  const bool flushed = engine_.FlushKvTiers(*deadline);
  PublishKvTierStats();
  {
    std::lock_guard<std::mutex> lock(mu_);
    flushed_ = flushed;
  }
  flush_cv_.notify_all();
}

void EngineWorker::Loop() {
  for (;;) {
    std::vector<Inbound> arrived;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || engine_.HasWork() || flush_deadline_.has_value(); });
      if (stop_ && inbox_.empty() && !engine_.HasWork()) {
        flushed_ = false;  // a flush asked for as the worker stops is not done
        flush_cv_.notify_all();
        return;
      }
      arrived.swap(inbox_);
      admitting_ = arrived.size();
    }
    for (auto& a : arrived) {
      const std::optional<StatusOr<GenerationResult>> refused = Admit(a);
      {  // no longer counted before its client can hear of it
        std::lock_guard<std::mutex> lock(mu_);
        --admitting_;
      }
      if (refused) {
        PublishGauges();  // a client that hears of its refusal never reads a gauge counting it
        a.job.sink->OnFinished(*refused);
      }
    }
    const bool stepped = engine_.HasWork();
    if (stepped) engine_.Step();
    for (auto it = observers_.begin(); it != observers_.end();) it = it->second->done ? observers_.erase(it) : std::next(it);
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_engine_ = observers_.size();
    }
    PublishGauges();
    if (metrics_ != nullptr) {
      // Only after a step: a wake-up that only refused a job would count the previous step again.
      if (stepped && engine_.last_step_tokens() > 0) metrics_->ObserveIterationTokens(engine_.last_step_tokens());
      if (stepped && engine_.last_step_sequences() > 0)
        metrics_->ObserveIterationSequences(engine_.last_step_sequences());
      metrics_->AddPreemptions(engine_.num_preemptions() - preemptions_seen_);
      preemptions_seen_ = engine_.num_preemptions();
    }
    PublishKvTierStats();
    FlushIfAsked();
  }
}

}  // namespace bpt::server
