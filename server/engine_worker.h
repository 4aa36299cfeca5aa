// The thread that owns the engine. gRPC threads only enqueue jobs and never wait on the engine;
// a text prompt is tokenized first on the tokenizer pool, then the worker moves the job into the
// engine's scheduler and steps it while any request is in flight (continuous batching). Each
// job reports through its sink, on this thread, ending with exactly one OnFinished.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine.h"
#include "metrics.h"
#include "tokenizer_pool.h"

namespace bpt::server {

class GenerationSink {
 public:
  virtual ~GenerationSink() = default;
  virtual bool Cancelled() const = 0;
  // The engine took the job (its prompt tokenized and within every limit): from here on only a
  // cancel or a backend failure ends it early. The HTTP API chooses its status code here.
  virtual void OnAdmitted() {}
  virtual void OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) = 0;
  virtual void OnToken(const TokenOutput& token) = 0;
  // Called once per submitted job: the result (timings include the time queued), or the
  // status that ends it.
  virtual void OnFinished(const StatusOr<GenerationResult>& result) = 0;
};

// Tokenizes a prompt text, stopping past max_tokens: Engine::EncodePrompt, or a test's own.
// OutOfRange when the text passes max_tokens.
using PromptEncodeFn =
    std::function<StatusOr<std::vector<int32_t>>(std::string_view text, bool add_bos, int64_t max_tokens)>;

// A conversation for the model's chat template (Engine::RenderChat).
struct ChatPrompt {
  std::vector<ChatMessage> messages;
  bool continue_final_message = false;
};

// A prompt as tokenized: the text that went to the tokenizer (a chat's rendering) and its ids.
struct TokenizedPrompt {
  std::string text;
  std::vector<int32_t> ids;
};

struct GenerationJob {
  // Tokenized on the tokenizer pool when request.prompt is empty: the chat when set, else the text.
  std::string prompt_text;
  std::optional<ChatPrompt> chat;
  GenerationRequest request;
  bool default_max_new_tokens = false;  // the client left it unset: clamp it to what fits
  std::shared_ptr<GenerationSink> sink;
};

class EngineWorker {
 public:
  // max_prompt_tokens: the server's own limit (0: the model's). The engine's max_queue (the
  // scheduler's bound, which refuses past it) also bounds the jobs being tokenized and those
  // waiting for this worker, each count on its own.
  EngineWorker(Engine& engine, int64_t max_prompt_tokens, int tokenizer_threads, Metrics* metrics,
               PromptEncodeFn encode = nullptr);
  ~EngineWorker();

  // ResourceExhausted when the queue is full; Unavailable once draining.
  Status Submit(GenerationJob job);
  // The Tokenize RPC: text to ids on the tokenizer pool, BOS first when add_bos, under the same
  // limit as prompts. done runs once, on a tokenizer thread (or here, when the pool is full);
  // text must stay alive until then.
  void TokenizeText(std::string_view text, bool add_bos, std::function<void(StatusOr<std::vector<int32_t>>)> done);
  // The Tokenize RPC for a chat: rendered, then tokenized as Generate does, likewise on the pool.
  void TokenizeChat(ChatPrompt chat, std::function<void(StatusOr<TokenizedPrompt>)> done);
  // The Detokenize RPC, likewise on the tokenizer pool; ids must stay alive until done.
  void DetokenizeIds(std::span<const int32_t> ids, bool skip_special_tokens,
                     std::function<void(StatusOr<std::string>)> done);
  // Draining: refuse new jobs, let the queued and running ones finish.
  void StopAccepting();
  // The drain deadline passed: every queued and running job ends cancelled.
  void CancelAll();
  // The drain, once no job is left (Idle): the engine's thread waits for the writes queued to
  // the KV tiers (Engine::FlushKvTiers) until `deadline`; blocks the caller until then. False
  // when some were left, or when the worker has stopped.
  bool FlushKvTiers(std::chrono::steady_clock::time_point deadline);
  bool Idle() const;
  // What a request's unset sampling fields become; fixed once the engine is loaded.
  const SamplingParams& default_sampling() const { return engine_.model_info().default_sampling; }

 private:
  struct Inbound {
    GenerationJob job;
    std::chrono::steady_clock::time_point enqueued;
    std::optional<Status> refused;  // set by the tokenizer: the worker only ends the job
  };
  class JobObserver;
  void Loop();
  // On a tokenizer thread: the job's text to ids; the refusal, if any.
  std::optional<Status> EncodeJobPrompt(GenerationJob& job) const;
  // On a tokenizer thread: the chat rendered by the model's template, then tokenized with no
  // special tokens added (the template wrote them), under `limit` tokens.
  StatusOr<TokenizedPrompt> EncodeChat(const ChatPrompt& chat, int64_t limit) const;
  // Then, its pool place freed: into the inbox, where the worker admits or refuses it.
  void QueueEncoded(GenerationJob job, std::chrono::steady_clock::time_point submitted, std::optional<Status> refused);
  // The most tokens a text prompt may have, and the refusal past it.
  int64_t PromptTokenLimit() const;
  // what: "prompt", "text" or "the rendered chat".
  Status PromptTooLong(const std::string& what, const std::string& count) const;
  Status QueueFull() const;
  Status TokenizerQueueFull() const;
  // Moves the job into the engine; what to finish it with when it cannot go there.
  std::optional<StatusOr<GenerationResult>> Admit(Inbound& inbound);
  // Running, waiting and KV gauges: after every step, and as each request ends, so a client
  // that sees its stream end never reads a gauge that still counts it.
  void PublishGauges();
  // The KV tiers' counters and durations since the last look (after each step and the flush).
  void PublishKvTierStats();
  // On the worker's thread, between steps: the flush FlushKvTiers asked for, once no job is left.
  void FlushIfAsked();

  Engine& engine_;
  const size_t max_queue_;
  const int64_t max_prompt_tokens_;
  Metrics* metrics_;
  const PromptEncodeFn encode_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Inbound> inbox_;
  size_t in_engine_ = 0;          // jobs the engine holds (waiting or running)
  size_t admitting_ = 0;          // taken from the inbox, not yet in the engine or refused
  size_t tokenizing_ = 0;         // on the tokenizer pool
  bool accepting_ = true;
  bool stop_ = false;
  std::atomic<bool> cancel_all_{false};
  // FlushKvTiers: asked (with its deadline), then done (with its result).
  std::optional<std::chrono::steady_clock::time_point> flush_deadline_;
  std::optional<bool> flushed_;
  std::condition_variable flush_cv_;
  int64_t preemptions_seen_ = 0;  // worker thread only
  std::map<const JobObserver*, std::unique_ptr<JobObserver>> observers_;  // worker thread only
  std::thread thread_;
  // Last: destroyed first, so every tokenization has handed its job on before the loop stops.
  std::unique_ptr<TokenizerPool> tokenizer_pool_;
};

}  // namespace bpt::server
