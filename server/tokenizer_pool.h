// Threads that tokenize prompts, so a long text never holds up the engine's thread or a gRPC
// thread. Bounded: at most max_pending tasks are queued or running; beyond that TryRun refuses
// and the caller answers RESOURCE_EXHAUSTED. Every tokenizer goes through Engine::EncodePrompt,
// which stops as soon as a text passes its token limit.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bpt::server {

class TokenizerPool {
 public:
  TokenizerPool(int num_threads, size_t max_pending);
  // Runs every task already accepted, then joins.
  ~TokenizerPool();
  TokenizerPool(const TokenizerPool&) = delete;
  TokenizerPool& operator=(const TokenizerPool&) = delete;

  // The work of a task, and then the delivery of its result that the work returns. A task's
  // place is freed between the two, so a client that has heard back can be served again at once.
  using Task = std::function<std::function<void()>()>;
  // False (and the task dropped) when max_pending tasks are already queued or running.
  bool TryRun(Task task);

 private:
  void Work();

  const size_t max_pending_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<Task> queue_;
  size_t running_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace bpt::server
