// The CPU backend's thread pool: every item of every job runs exactly once, and none after
// ParallelFor returns, over many back-to-back jobs of varying sizes (a worker that read the
// previous job's last claim must never take an item of the next).
#include "thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace bpt {
namespace {

TEST(ThreadPoolTest, EveryItemOfEveryJobRunsExactlyOnce) {
  ThreadPool pool(3);
  constexpr int kSizes[] = {1, 2, 3, 17, 2, 64, 5};
  std::vector<std::atomic<int>> runs(64);
  for (int job = 0; job < 20000; ++job) {
    const int count = kSizes[job % 7];
    for (int i = 0; i < count; ++i) runs[i].store(0);
    std::atomic<bool> returned{false};
    pool.ParallelFor(count, [&](int64_t item, int thread) {
      ASSERT_FALSE(returned.load());
      ASSERT_LT(thread, 3);
      runs[item].fetch_add(1);
    });
    returned.store(true);
    for (int i = 0; i < count; ++i) ASSERT_EQ(runs[i].load(), 1) << "job " << job << " item " << i;
  }
}

}  // namespace
}  // namespace bpt
