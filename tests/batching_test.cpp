// Continuous batching through the engine (CPU backend): batched generation equals
// one-at-a-time, a short request keeps streaming during a long prefill, and preemption under a
// small KV pool changes nothing in the results.
#include <gtest/gtest.h>

#include <random>

#include "engine.h"
#include "test_models.h"

namespace bpt {
namespace {

using testing::TempDir;

class BatchingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    testing::WriteModelOrDie(dir_->path(), testing::SmallConfig(), DType::kBF16, 21);
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::unique_ptr<Engine> Make(int64_t kv_capacity, int max_running, int prefill_block = 32) {
    EngineOptions options;
    options.model_dir = dir_->path();
    options.scheduler.prefill_block = prefill_block;
    options.kv_cache.block_size = 4;
    options.kv_cache.capacity_tokens = kv_capacity;
    options.scheduler.max_running = max_running;
    options.kv_cache.shuffle_blocks = true;
    auto engine = Engine::Create(options);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return std::move(engine).value();
  }

  static GenerationRequest Request(int prompt_length, uint32_t seed, int max_new_tokens) {
    std::mt19937 rng(seed);
    GenerationRequest r;
    for (int i = 0; i < prompt_length; ++i) r.prompt.push_back(static_cast<int32_t>(rng() % 97));
    r.sampling.temperature = 0;
    r.stopping.max_new_tokens = max_new_tokens;
    r.stopping.ignore_eos = true;
    r.use_prefix_cache = false;
    return r;
  }

  static TempDir* dir_;
};
TempDir* BatchingTest::dir_ = nullptr;

struct Collector : GenerationObserver {
  std::vector<int32_t> tokens;
  std::optional<StatusOr<GenerationResult>> result;
  std::vector<int64_t> token_steps;  // the step number of each token
  int64_t prefill_done_step = -1;    // the step that computed the prompt's last token
  const int64_t* step = nullptr;
  bool OnPrefillProgress(int64_t done, int64_t total) override {
    if (done == total && step != nullptr) prefill_done_step = *step;
    return true;
  }
  bool OnToken(const TokenOutput& t) override {
    tokens.push_back(t.token_id);
    if (step != nullptr) token_steps.push_back(*step);
    return true;
  }
  void OnFinished(const StatusOr<GenerationResult>& r) override { result = r; }
};

void RunUntilDone(Engine& engine, int64_t* steps = nullptr) {
  int64_t guard = 0;
  while (engine.HasWork()) {
    engine.Step();
    if (steps != nullptr) ++*steps;
    ASSERT_LT(++guard, 100000);
  }
}

TEST_F(BatchingTest, BatchedGenerationEqualsOneAtATime) {
  const std::vector<std::pair<int, int>> shapes = {{1, 9}, {7, 14}, {33, 5}, {64, 12}, {150, 8}, {301, 10}};
  std::vector<std::vector<int32_t>> alone;
  {
    auto engine = Make(4096, 1);
    for (size_t i = 0; i < shapes.size(); ++i) {
      auto r = engine->Generate(Request(shapes[i].first, 100 + i, shapes[i].second), nullptr);
      ASSERT_TRUE(r.ok());
      alone.push_back(r->token_ids);
    }
  }
  auto engine = Make(4096, 4);  // four at a time: the others wait, then join
  std::vector<Collector> collectors(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i)
    ASSERT_TRUE(engine->Submit(Request(shapes[i].first, 100 + i, shapes[i].second), &collectors[i]).ok());
  RunUntilDone(*engine);
  for (size_t i = 0; i < shapes.size(); ++i) {
    ASSERT_TRUE(collectors[i].result && collectors[i].result->ok()) << i;
    EXPECT_EQ(collectors[i].result->value().token_ids, alone[i]) << "prompt of " << shapes[i].first << " tokens";
    EXPECT_EQ(collectors[i].tokens, alone[i]);
  }
  EXPECT_EQ(engine->kv_free_tokens(), engine->kv_capacity_tokens());
}

TEST_F(BatchingTest, ShortRequestStreamsEveryStepDuringALongPrefill) {
  auto engine = Make(8192, 4, /*prefill_block=*/32);
  int64_t step = 0;
  Collector long_one, short_one;
  short_one.step = &step;
  long_one.step = &step;
  ASSERT_TRUE(engine->Submit(Request(2000, 1, 2), &long_one).ok());
  engine->Step();  // the long prefill is under way
  ++step;
  ASSERT_TRUE(engine->Submit(Request(5, 2, 30), &short_one).ok());
  while (engine->HasWork()) {
    engine->Step();
    ++step;
  }
  ASSERT_TRUE(long_one.result && long_one.result->ok());
  ASSERT_TRUE(short_one.result && short_one.result->ok());
  ASSERT_EQ(short_one.token_steps.size(), 30u);
  // Admitted in the step after it arrived, then one token every step, all while the long
  // prompt (2000 tokens, at most 32 per step) was still being prefilled.
  EXPECT_EQ(short_one.token_steps.front(), 1);
  for (size_t i = 1; i < short_one.token_steps.size(); ++i)
    EXPECT_EQ(short_one.token_steps[i] - short_one.token_steps[i - 1], 1) << "gap before token " << i;
  EXPECT_LT(short_one.token_steps.back(), long_one.prefill_done_step)
      << "the short request finished before the long prompt was fully prefilled";
  EXPECT_GT(long_one.prefill_done_step, 2000 / 32) << "the long prefill took many steps";
}

TEST_F(BatchingTest, PreemptionUnderASmallPoolKeepsResults) {
  std::vector<std::vector<int32_t>> alone;
  {
    auto engine = Make(4096, 1);
    for (int i = 0; i < 4; ++i) alone.push_back(engine->Generate(Request(40, 300 + i, 30), nullptr)->token_ids);
  }
  auto engine = Make(/*kv_capacity=*/160, 4);  // four sequences of 70 tokens cannot all fit
  std::vector<Collector> collectors(4);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(engine->Submit(Request(40, 300 + i, 30), &collectors[i]).ok());
  RunUntilDone(*engine);
  EXPECT_GT(engine->num_preemptions(), 0);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(collectors[i].result && collectors[i].result->ok()) << collectors[i].result->status().ToString();
    EXPECT_EQ(collectors[i].result->value().token_ids, alone[i]) << "sequence " << i;
    EXPECT_EQ(collectors[i].tokens, alone[i]) << "each token streamed once, even when recomputed";
  }
  EXPECT_EQ(engine->kv_free_tokens(), 160);
}

TEST_F(BatchingTest, CancellationAndDeadlinesActOnQueuedAndRunningRequests) {
  auto engine = Make(4096, 1);
  struct Cancellable : Collector {
    bool cancel = false;
    bool Cancelled() const override { return cancel; }
  };
  Cancellable running, queued;
  Collector expiring;
  ASSERT_TRUE(engine->Submit(Request(10, 1, 100), &running).ok());
  ASSERT_TRUE(engine->Submit(Request(10, 2, 100), &queued).ok());
  GenerationRequest late = Request(10, 3, 100);
  late.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  ASSERT_TRUE(engine->Submit(late, &expiring).ok());
  engine->Step();
  engine->Step();
  EXPECT_FALSE(running.tokens.empty());
  EXPECT_TRUE(queued.tokens.empty()) << "max_running 1: still queued";
  running.cancel = true;
  queued.cancel = true;
  RunUntilDone(*engine);
  ASSERT_TRUE(running.result && running.result->ok());
  EXPECT_EQ(running.result->value().finish_reason, FinishReason::kCancelled);
  ASSERT_TRUE(queued.result && queued.result->ok());
  EXPECT_EQ(queued.result->value().finish_reason, FinishReason::kCancelled);
  ASSERT_TRUE(expiring.result.has_value());
  EXPECT_EQ(expiring.result->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(engine->kv_free_tokens(), engine->kv_capacity_tokens());
}

}  // namespace
}  // namespace bpt
