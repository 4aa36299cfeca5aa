// The thread that owns the engine. gRPC threads only enqueue jobs and never wait on the engine;
// the worker moves them into the engine's scheduler and steps it while any request is in
// flight (continuous batching). Each job reports through its sink, on this thread, ending with
// exactly one OnFinished.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "server/metrics.h"

namespace bpt::server {

class GenerationSink {
 public:
  virtual ~GenerationSink() = default;
  virtual bool Cancelled() const = 0;
  virtual void OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) = 0;
  virtual void OnToken(const TokenOutput& token) = 0;
  // Called once per submitted job: the result (timings include the time queued), or the
  // status that ends it.
  virtual void OnFinished(const StatusOr<GenerationResult>& result) = 0;
};

struct GenerationJob {
  std::string prompt_text;      // tokenized on the worker when request.prompt is empty
  GenerationRequest request;
  bool default_max_new_tokens = false;  // the client left it unset: clamp it to what fits
  std::shared_ptr<GenerationSink> sink;
};

class EngineWorker {
 public:
  // max_prompt_tokens: the server's own limit (0: the model's).
  EngineWorker(Engine& engine, int max_queue, int64_t max_prompt_tokens, Metrics* metrics);
  ~EngineWorker();

  // ResourceExhausted when the queue is full; Unavailable once draining.
  Status Submit(GenerationJob job);
  // Draining: refuse new jobs, let the queued and running ones finish.
  void StopAccepting();
  // The drain deadline passed: every queued and running job ends cancelled.
  void CancelAll();
  bool Idle() const;

 private:
  struct Inbound {
    GenerationJob job;
    std::chrono::steady_clock::time_point enqueued;
  };
  class JobObserver;
  void Loop();
  Status QueueFull() const;
  // Moves the job into the engine; what to finish it with when it cannot go there.
  std::optional<StatusOr<GenerationResult>> Admit(Inbound& inbound);
  // Running, waiting and KV gauges: after every step, and as each request ends, so a client
  // that sees its stream end never reads a gauge that still counts it.
  void PublishGauges();

  Engine& engine_;
  const size_t max_queue_;
  const int64_t max_prompt_tokens_;
  Metrics* metrics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Inbound> inbox_;
  size_t in_engine_ = 0;          // jobs the engine holds (waiting or running)
  size_t admitting_ = 0;          // taken from the inbox, not yet in the engine or refused
  bool accepting_ = true;
  bool stop_ = false;
  std::atomic<bool> cancel_all_{false};
  int64_t preemptions_seen_ = 0;  // worker thread only
  std::map<const JobObserver*, std::unique_ptr<JobObserver>> observers_;  // worker thread only
  std::thread thread_;
};

}  // namespace bpt::server
