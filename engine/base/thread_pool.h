// A fixed set of worker threads for the CPU backend's kernels.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bpt {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(item, thread_index) for item in [0, count) and returns when all are done. The
  // caller's thread takes part as thread_index 0. Not reentrant.
  void ParallelFor(int64_t count, const std::function<void(int64_t, int)>& fn);

 private:
  void WorkerLoop(int thread_index);
  void RunItems(int thread_index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t count_ = 0;
  int64_t next_ = 0;
  int busy_workers_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace bpt
