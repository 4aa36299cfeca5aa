// Peak memory during long prefills: weights + KV cache + the fixed workspace, nothing that grows
// with the prompt but the KV cache. Peak RSS is per process, so this test has its own binary.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <string>

#include "engine.h"
#include "proc_status.h"
#include "test_models.h"

namespace bpt {
namespace {


TEST(Memory, PrefillPeakIsWeightsKvAndWorkspace) {
  testing::TempDir dir;
  nlohmann::json config = testing::SmallConfig();
  config["vocab_size"] = 256;
  config["hidden_size"] = 64;
  config["intermediate_size"] = 128;
  config["num_hidden_layers"] = 1;
  config["num_attention_heads"] = 4;
  config["num_key_value_heads"] = 4;
  config["head_dim"] = 32;
  config["max_position_embeddings"] = 70000;
  testing::WriteModelOrDie(dir / "model", config, DType::kBF16);

  const int64_t baseline = testing::ProcStatusBytes("self", "VmRSS");
  ASSERT_GT(baseline, 0);
  EngineOptions options;
  options.model_dir = dir / "model";
  options.device = "cpu";  // "auto" would map the CUDA plugin (cuBLAS), which is not what is measured
  options.scheduler.prefill_block = 256;
  options.kv_cache.capacity_tokens = 65536 + 64;
  auto engine_or = Engine::Create(options);
  ASSERT_TRUE(engine_or.ok()) << engine_or.status().ToString();
  Engine& engine = *engine_or.value();
  const MemoryPlan plan = engine.memory_plan();

  std::mt19937 rng(1);
  auto prefill = [&](int64_t n) {
    std::vector<int32_t> prompt(n);
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % 256);
    auto logits = engine.PromptLogits(prompt);
    ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  };
  prefill(16384);
  const int64_t peak_16k = testing::ProcStatusBytes("self", "VmHWM");
  prefill(65536);
  const int64_t peak_64k = testing::ProcStatusBytes("self", "VmHWM");

  const int64_t kv_16k = plan.kv_bytes_per_token * 16384, kv_64k = plan.kv_bytes_per_token * 65536;
  const int64_t budget = plan.weight_bytes + kv_64k + plan.workspace_bytes;
  std::cout << "{\"baseline_rss\": " << baseline << ", \"peak_16k\": " << peak_16k << ", \"peak_64k\": " << peak_64k
            << ", \"weights\": " << plan.weight_bytes << ", \"workspace\": " << plan.workspace_bytes
            << ", \"kv_16k\": " << kv_16k << ", \"kv_64k\": " << kv_64k << "}\n";
  EXPECT_LE(peak_64k - baseline, budget * 11 / 10)
      << "a 64K prefill used more than weights + KV + workspace + 10%";
  EXPECT_LE(peak_64k - peak_16k, (kv_64k - kv_16k) * 11 / 10)
      << "memory grew from 16K to 64K by more than the KV cache did";
  EXPECT_GE(peak_64k - peak_16k, (kv_64k - kv_16k) * 9 / 10)
      << "the KV cache's growth should show in RSS; if not, this test measures nothing";
}

}  // namespace
}  // namespace bpt
