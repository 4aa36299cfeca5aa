// A fixed set of worker threads for the CPU backend's kernels. A forward step calls ParallelFor
// a few times per layer, each for tens of microseconds of work, so waking a sleeping thread
// (condition variable, tens of microseconds on a busy machine) would cost as much as the work:
// workers spin on the job counter for a short while after each job and only then sleep, and
// the caller spins for the items in flight to finish (never for a worker that has not woken).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
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
  // Claims and runs items of `generation` until none is left or another job began.
  void RunItems(uint64_t generation, int thread_index);

  std::vector<std::thread> workers_;
  // The current job. A worker claims an item by advancing `claim_` = generation << 32 | next
  // item. Jobs alternate between two slots by the generation's parity: a worker that read an
  // old claim can only advance it before the next job is published, and that job writes the
  // other slot, so it never runs an item of one job with another's function or bound.
  std::atomic<const std::function<void(int64_t, int)>*> fn_[2] = {nullptr, nullptr};
  std::atomic<int64_t> count_[2] = {0, 0};
  std::atomic<uint64_t> claim_{0};
  std::atomic<int64_t> done_{0};  // items of the current job finished
  // Sleeping workers wait here; ParallelFor takes the lock only when one sleeps.
  std::mutex mu_;
  std::condition_variable wake_cv_;
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace bpt
