#include "tokenizer_pool.h"

namespace bpt::server {

TokenizerPool::TokenizerPool(int num_threads, size_t max_pending) : max_pending_(max_pending) {
  for (int i = 0; i < num_threads; ++i) threads_.emplace_back([this] { Work(); });
}

TokenizerPool::~TokenizerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  ready_.notify_all();
  for (auto& t : threads_) t.join();
}

bool TokenizerPool::TryRun(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || queue_.size() + running_ >= max_pending_) return false;
    queue_.push_back(std::move(task));
  }
  ready_.notify_one();
  return true;
}

void TokenizerPool::Work() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ready_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    std::function<void()> deliver = task();
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
    }
    deliver();
  }
}

}  // namespace bpt::server
