// One forward step over several sequences (each with its own positions and block table, as the
// batching runtime will send them) equals running each sequence alone.
#include "model_runner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cpu_backend.h"
#include "test_models.h"

namespace bpt {
namespace {

struct Runner {
  std::unique_ptr<ModelRunner> runner;
  std::unique_ptr<KvBlockManager> blocks;
};

Runner MakeRunner(const std::string& dir) {
  auto config = LoadModelConfig(dir);
  EXPECT_TRUE(config.ok());
  auto weights = ModelWeights::Open(dir, *config);
  EXPECT_TRUE(weights.ok()) << weights.status().ToString();
  auto backend = std::make_unique<CpuBackend>(*config, CpuOptions{}, ElementType::kFloat32, ElementType::kFloat32);
  auto blocks = std::make_unique<KvBlockManager>(128, 8);
  blocks->ShuffleFreeBlocks(4);
  EXPECT_TRUE(backend->AllocateKvPool(config->num_layers, 128, 8, config->kv_dim()).ok());
  EngineOptions options;
  options.scheduler.prefill_block = 128;
  options.ffn_sub_block = 16;
  options.scheduler.max_running = 4;
  auto runner = ModelRunner::Create(*config, **weights, std::move(backend), options);
  EXPECT_TRUE(runner.ok()) << runner.status().ToString();
  return {std::move(runner).value(), std::move(blocks)};
}

TEST(ModelRunner, BatchedStepEqualsSequencesAlone) {
  testing::TempDir dir;
  testing::WriteModelOrDie(dir.path(), testing::SmallConfig(), DType::kBF16, 8);
  std::mt19937 rng(3);
  auto tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % 97);
    return t;
  };
  // Three sequences: a prompt start, a later chunk of a long prompt, and a decode step.
  const std::vector<std::vector<int32_t>> history = {{}, tokens(37), tokens(20)};
  const std::vector<std::vector<int32_t>> step_tokens = {tokens(11), tokens(23), tokens(1)};

  auto run = [&](Runner& r, const std::vector<int>& which, std::vector<BlockTable>& tables) {
    // Cache each sequence's history first, one sequence per step.
    for (int s : which) {
      const int64_t n = static_cast<int64_t>(history[s].size() + step_tokens[s].size());
      EXPECT_TRUE(r.blocks->Reserve(&tables[s], n).ok());
      if (history[s].empty()) continue;
      StepLayout warm;
      warm.token_ids = history[s];
      warm.sequences.push_back({0, static_cast<int32_t>(history[s].size()), &tables[s], false});
      std::vector<float> unused;
      EXPECT_TRUE(r.runner->Forward(warm, &unused).ok());
    }
    StepLayout step;
    for (int s : which) {
      step.token_ids.insert(step.token_ids.end(), step_tokens[s].begin(), step_tokens[s].end());
      step.sequences.push_back({static_cast<int64_t>(history[s].size()),
                                static_cast<int32_t>(step_tokens[s].size()), &tables[s], true});
    }
    std::vector<float> logits;
    EXPECT_TRUE(r.runner->Forward(step, &logits).ok());
    return logits;
  };

  Runner batched = MakeRunner(dir.path());
  std::vector<BlockTable> batched_tables(3);
  const std::vector<float> together = run(batched, {0, 1, 2}, batched_tables);
  ASSERT_EQ(together.size(), 3u * 97);
  double max_abs = 0, max_diff = 0;
  for (int s = 0; s < 3; ++s) {
    Runner alone = MakeRunner(dir.path());
    std::vector<BlockTable> tables(3);
    const std::vector<float> single = run(alone, {s}, tables);
    ASSERT_EQ(single.size(), 97u);
    for (int v = 0; v < 97; ++v) {
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(single[v])));
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(single[v]) - together[s * 97 + v]));
    }
  }
  // Only GEMM heights differ between the two runs (fp32 summation order).
  EXPECT_LE(max_diff, 1e-5 * max_abs) << "max |d| " << max_diff << " of max |logit| " << max_abs;
}

TEST(ModelRunner, RejectsStepsTheWorkspaceCannotHold) {
  testing::TempDir dir;
  testing::WriteModelOrDie(dir.path(), testing::SmallConfig());
  Runner r = MakeRunner(dir.path());
  BlockTable table;
  ASSERT_TRUE(r.blocks->Reserve(&table, 200).ok());
  StepLayout too_long;
  too_long.token_ids.assign(129, 3);
  too_long.sequences.push_back({0, 129, &table, true});
  std::vector<float> logits;
  EXPECT_EQ(r.runner->Forward(too_long, &logits).code(), StatusCode::kInternal);
  StepLayout too_many_logits;
  for (int s = 0; s < 5; ++s) {
    too_many_logits.token_ids.push_back(3);
    too_many_logits.sequences.push_back({s, 1, &table, true});
  }
  EXPECT_EQ(r.runner->Forward(too_many_logits, &logits).code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace bpt
