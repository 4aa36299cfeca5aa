#include "thread_pool.h"

#include <chrono>

namespace bpt {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long an idle worker keeps watching for the next job before it sleeps: longer than the
// gaps between a step's jobs (norms, residual adds), short enough that an idle server is idle.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(200);

uint64_t GenerationOf(uint64_t claim) { return claim >> 32; }
int64_t ItemOf(uint64_t claim) { return static_cast<int64_t>(claim & 0xffffffffu); }

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunItems(uint64_t generation, int thread_index) {
  const int slot = static_cast<int>(generation & 1);
  uint64_t claim = claim_.load();
  for (;;) {
    if (GenerationOf(claim) != generation) return;
    const int64_t item = ItemOf(claim);
    if (item >= count_[slot].load()) return;
    if (!claim_.compare_exchange_weak(claim, claim + 1)) continue;  // claim reloaded
    // The claim succeeded, so this job is not finished and its slot still holds its function.
    (*fn_[slot].load())(item, thread_index);
    done_.fetch_add(1);
    claim = claim_.load();
  }
}

void ThreadPool::WorkerLoop(int thread_index) {
  uint64_t seen = 0;
  for (;;) {
    auto spin_end = std::chrono::steady_clock::now() + kSpinBeforeSleep;
    for (int spins = 0; GenerationOf(claim_.load()) == seen && !stop_.load(); ++spins) {
      CpuRelax();
      if ((spins & 255) == 255 && std::chrono::steady_clock::now() > spin_end) {
        std::unique_lock<std::mutex> lock(mu_);
        // Registered before the generation is read again: ParallelFor publishes a job before
        // it reads sleeping_workers_, so either it sees this sleeper or this sees the job.
        sleeping_workers_.fetch_add(1);
        wake_cv_.wait(lock, [&] { return stop_.load() || GenerationOf(claim_.load()) != seen; });
        sleeping_workers_.fetch_sub(1);
      }
    }
    if (stop_.load()) return;
    seen = GenerationOf(claim_.load());
    RunItems(seen, thread_index);
  }
}

void ThreadPool::ParallelFor(int64_t count, const std::function<void(int64_t, int)>& fn) {
  if (count <= 0) return;
  // Items are the claim's low 32 bits; no step comes near, but a count past them runs here.
  if (workers_.empty() || count == 1 || count > 0xffffffffLL) {
    for (int64_t i = 0; i < count; ++i) fn(i, 0);
    return;
  }
  const uint64_t generation = (GenerationOf(claim_.load()) + 1) & 0xffffffffu;
  const int slot = static_cast<int>(generation & 1);
  fn_[slot].store(&fn);
  count_[slot].store(count);
  done_.store(0);
  claim_.store(generation << 32);  // publishes the job (sequentially consistent)
  if (sleeping_workers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    wake_cv_.notify_all();
  }
  RunItems(generation, 0);
  // Items claimed by workers may still run; yield now and then on a crowded machine.
  for (int spins = 0; done_.load() < count; ++spins) {
    CpuRelax();
    if ((spins & 1023) == 1023) std::this_thread::yield();
  }
}

}  // namespace bpt
