// The engine worker with the tokenizer pool: a text prompt is tokenized off the engine's
// thread, so a stream already running keeps producing tokens while a huge prompt is tokenized,
// and the huge prompt is refused as soon as it passes the limit. A cancel raised on the worker's
// thread lands before the next step.
#include "engine_worker.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "server_test_util.h"

namespace bpt {
namespace {

class RecordingSink : public server::GenerationSink {
 public:
  bool Cancelled() const override { return cancelled.load(); }
  void OnPrefillProgress(int64_t processed, int64_t total) override {
    std::lock_guard<std::mutex> lock(mu);
    progress.emplace_back(processed, total);
    if (cancel_on_progress) cancelled = true;
  }
  void OnToken(const TokenOutput&) override {
    std::lock_guard<std::mutex> lock(mu);
    ++tokens;
    cv.notify_all();
  }
  void OnFinished(const StatusOr<GenerationResult>& result) override {
    std::lock_guard<std::mutex> lock(mu);
    status = result.ok() ? OkStatus() : result.status();
    if (result.ok()) finish_reason = result->finish_reason;
    ++finished;
    cv.notify_all();
  }
  // Waits for pred under the sink's lock; false if it never held within a minute, which only a
  // stalled engine thread explains.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::minutes(1), pred);
  }

  std::atomic<bool> cancelled{false};
  bool cancel_on_progress = false;
  std::mutex mu;
  std::condition_variable cv;
  int tokens = 0;
  int finished = 0;
  Status status;
  std::optional<FinishReason> finish_reason;
  std::vector<std::pair<int64_t, int64_t>> progress;
};

std::unique_ptr<Engine> DemoEngine() {
  EngineOptions options;
  options.model_dir = testing::DemoModelDir();
  options.kv_cache.capacity_tokens = 8192;
  options.scheduler.prefill_block = 64;
  auto engine = Engine::Create(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(engine).value();
}

std::string Words(size_t bytes) {
  std::string text;
  for (size_t i = 0; text.size() < bytes; ++i) text += (i % 7 == 0 ? " The" : " long document") + std::to_string(i % 100);
  return text;
}

TEST(EngineWorker, StreamsKeepTheirPaceWhileAHugePromptIsTokenized) {
  std::unique_ptr<Engine> engine = DemoEngine();
  auto running = std::make_shared<RecordingSink>();
  std::mutex mu;
  std::condition_variable cv;
  bool tokenizing = false;
  bool running_stream_advanced = false;
  // The huge prompt's tokenization lasts until the running stream has produced 20 more tokens:
  // on the engine's thread that could never happen.
  server::PromptEncodeFn encode = [&](std::string_view text, bool add_bos, int64_t max_tokens) {
    if (text.size() > 1000) {
      int start;
      {
        std::lock_guard<std::mutex> lock(running->mu);
        start = running->tokens;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        tokenizing = true;
      }
      cv.notify_all();
      running_stream_advanced = running->WaitFor([&] { return running->tokens >= start + 20; });
    }
    return engine->EncodePrompt(text, max_tokens, add_bos);
  };
  server::EngineWorker worker(*engine, /*max_prompt_tokens=*/4096, /*tokenizer_threads=*/1, nullptr, encode);

  server::GenerationJob first;
  first.prompt_text = "a stream that runs throughout";
  first.request.stopping.max_new_tokens = 4000;
  first.request.stopping.ignore_eos = true;
  first.sink = running;
  ASSERT_TRUE(worker.Submit(std::move(first)).ok());
  ASSERT_TRUE(running->WaitFor([&] { return running->tokens > 0; }));

  auto huge = std::make_shared<RecordingSink>();
  server::GenerationJob second;
  second.prompt_text = Words(20 * 1024 * 1024);
  second.request.stopping.max_new_tokens = 1;
  second.sink = huge;
  ASSERT_TRUE(worker.Submit(std::move(second)).ok());
  ASSERT_TRUE(huge->WaitFor([&] { return huge->finished == 1; }));
  EXPECT_TRUE(tokenizing);
  EXPECT_TRUE(running_stream_advanced) << "the running stream stalled while the huge prompt was tokenized";
  EXPECT_EQ(huge->status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(huge->status.message().find("prompt has more than 4096 tokens"), std::string::npos) << huge->status.ToString();
  EXPECT_NE(huge->status.message().find("--max-prompt-tokens"), std::string::npos);

  running->cancelled = true;
  ASSERT_TRUE(running->WaitFor([&] { return running->finished == 1; }));
}

// The Tokenize RPC's work happens on the pool: TokenizeText returns to its caller (a gRPC thread)
// while the tokenization it started is still held back.
TEST(EngineWorker, TokenizeTextReturnsBeforeTheTokenizerRuns) {
  std::unique_ptr<Engine> engine = DemoEngine();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  server::PromptEncodeFn encode = [&](std::string_view text, bool add_bos, int64_t max_tokens) {
    released.wait_for(std::chrono::minutes(1));  // inline, this would only pass after a minute
    return engine->EncodePrompt(text, max_tokens, add_bos);
  };
  server::EngineWorker worker(*engine, 0, 1, nullptr, encode);
  const std::string text = "count these tokens";
  std::promise<StatusOr<std::vector<int32_t>>> result;
  worker.TokenizeText(text, true, [&](StatusOr<std::vector<int32_t>> ids) { result.set_value(std::move(ids)); });
  auto ids = result.get_future();
  EXPECT_EQ(ids.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "tokenized on the caller's thread";
  release.set_value();
  const StatusOr<std::vector<int32_t>> got = ids.get();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, *engine->EncodePrompt(text));
}

// Tokenized for real past the limit: stopped after a few chunks, refused with the limit, and a
// prompt right at the limit still runs.
TEST(EngineWorker, TextPastTheLimitIsRefusedAfterTokenizing) {
  std::unique_ptr<Engine> engine = DemoEngine();
  const int64_t limit = 3000;
  server::EngineWorker worker(*engine, limit, 2, nullptr);
  const int piece_bytes = engine->max_piece_bytes();
  ASSERT_GT(piece_bytes, 0);
  // Below the up-front bound, so it must be tokenized to be refused.
  const std::string text = Words(static_cast<size_t>(limit) * piece_bytes - 1);
  ASSERT_GT(engine->EncodePrompt(text)->size(), static_cast<size_t>(limit));
  auto sink = std::make_shared<RecordingSink>();
  server::GenerationJob job;
  job.prompt_text = text;
  job.request.stopping.max_new_tokens = 1;
  job.sink = sink;
  ASSERT_TRUE(worker.Submit(std::move(job)).ok());
  ASSERT_TRUE(sink->WaitFor([&] { return sink->finished == 1; }));
  EXPECT_EQ(sink->status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(sink->status.message().find("more than 3000 tokens"), std::string::npos) << sink->status.ToString();

  auto fits = std::make_shared<RecordingSink>();
  server::GenerationJob ok_job;
  ok_job.prompt_text = Words(2000);
  ok_job.request.stopping.max_new_tokens = 2;
  ok_job.sink = fits;
  ASSERT_TRUE(worker.Submit(std::move(ok_job)).ok());
  ASSERT_TRUE(fits->WaitFor([&] { return fits->finished == 1; }));
  EXPECT_TRUE(fits->status.ok()) << fits->status.ToString();
  EXPECT_EQ(fits->tokens, 2);
}

// The sink cancels on its first progress event, on the worker's thread, inside the step that
// computed the first chunk; the worker polls Cancelled() before every step, so the prefill ends
// there: one chunk computed, no token, every block free again. Nothing here depends on timing.
TEST(EngineWorker, CancelOnTheFirstProgressEventEndsThePrefillThere) {
  std::unique_ptr<Engine> engine = DemoEngine();  // 64-token chunks
  server::EngineWorker worker(*engine, 0, 1, nullptr);
  auto sink = std::make_shared<RecordingSink>();
  sink->cancel_on_progress = true;
  server::GenerationJob job;
  for (int i = 0; i < 1000; ++i) job.request.prompt.push_back(3 + (i * 7) % 900);
  job.request.stopping.max_new_tokens = 4;
  job.request.stopping.ignore_eos = true;
  job.sink = sink;
  ASSERT_TRUE(worker.Submit(std::move(job)).ok());
  ASSERT_TRUE(sink->WaitFor([&] { return sink->finished == 1; }));
  ASSERT_TRUE(sink->status.ok()) << sink->status.ToString();
  EXPECT_EQ(sink->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(sink->progress, (std::vector<std::pair<int64_t, int64_t>>{{64, 1000}}));
  EXPECT_EQ(sink->tokens, 0);
  // The engine released the blocks before it reported the end, which the lock above ordered
  // before this read; the worker, idle now, only reads the engine.
  EXPECT_EQ(engine->kv_free_tokens(), engine->kv_capacity_tokens());
}

}  // namespace
}  // namespace bpt
