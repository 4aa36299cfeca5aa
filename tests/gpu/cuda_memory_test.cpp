// Device memory during a 256K-token prefill of the TinyLlama-1.1B shape: the engine allocates
// weights, workspace and KV pool at start-up and nothing afterwards, so the device's free
// memory never drops below what it was once the engine was built (sampled every millisecond
// while the prefill runs), and the engine's whole footprint is the plan it reports.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "engine.h"
#include "random_model.h"
#include "cuda_test_util.h"
#include "test_models.h"

namespace bpt {
namespace {

constexpr int64_t kMiB = 1 << 20;
// Code of kernels first used during the run is loaded lazily (CUDA's default module loading)
// and takes a little device memory; a growth with the prompt would be far larger (the KV
// cache alone is 22.5 KB per token, activations of a 256K prompt would be gigabytes).
constexpr int64_t kLazyModuleSlack = 32 * kMiB;
// The CUDA context and cuBLAS's loaded kernels, outside the engine's own allocations.
constexpr int64_t kContextSlack = 1024 * kMiB;

// The GPU script shares one generated TinyLlama-shape model between bench and this test
// (BPTSERVE_GPU_MODEL_DIR: bench --preset tinyllama's folder), and shortens the prompt when its
// time is short (BPTSERVE_GPU_MEMORY_TOKENS, default 256K).
TEST(CudaMemory, PrefillStaysWithinWeightsKvAndWorkspace) {
  BPT_SKIP_WITHOUT_CUDA();
  testing::TempDir dir;
  std::string model_dir = dir / "model";
  const char* shared_model = std::getenv("BPTSERVE_GPU_MODEL_DIR");
  if (shared_model != nullptr && std::filesystem::exists(std::filesystem::path(shared_model) / "model.safetensors")) {
    model_dir = shared_model;
  } else {
    nlohmann::json config = TinyLlamaConfig();
    config["max_position_embeddings"] = 1 << 20;
    testing::WriteModelOrDie(model_dir, config, DType::kBF16, 5);
  }
  const char* tokens_env = std::getenv("BPTSERVE_GPU_MEMORY_TOKENS");
  const int64_t prompt_tokens = tokens_env != nullptr ? std::atoll(tokens_env) : 262144;
  ASSERT_GE(prompt_tokens, 8192) << "BPTSERVE_GPU_MEMORY_TOKENS";

  auto start = CudaMemoryInfoNow(0);  // creates the context
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  EngineOptions options;
  options.model_dir = model_dir;
  options.device = "cuda";
  options.scheduler.prefill_block = 2048;
  options.kv_cache.capacity_tokens = prompt_tokens + 4096;
  auto engine_or = Engine::Create(options);
  ASSERT_TRUE(engine_or.ok()) << engine_or.status().ToString();
  Engine& engine = *engine_or.value();
  const MemoryPlan plan = engine.memory_plan();
  const int64_t planned = plan.weight_bytes + plan.workspace_bytes + plan.kv_capacity_tokens * plan.kv_bytes_per_token;

  std::mt19937 rng(1);
  auto prompt = [&](int64_t n) {
    std::vector<int32_t> p(n);
    for (auto& t : p) t = static_cast<int32_t>(rng() % 32000);
    return p;
  };
  ASSERT_TRUE(engine.PromptLogits(prompt(4096)).ok());  // every prefill kernel used once
  auto built = CudaMemoryInfoNow(0);
  ASSERT_TRUE(built.ok());

  std::atomic<bool> running{true};
  std::atomic<int64_t> lowest_free{built->free_bytes};
  std::thread sampler([&] {
    while (running) {
      auto now = CudaMemoryInfoNow(0);
      if (now.ok() && now->free_bytes < lowest_free) lowest_free = now->free_bytes;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto logits = engine.PromptLogits(prompt(prompt_tokens));
  running = false;
  sampler.join();
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  ASSERT_TRUE(testing::AllFinite(*logits));

  const int64_t growth = built->free_bytes - lowest_free;
  RecordProperty("weights_mib", std::to_string(plan.weight_bytes / kMiB));
  RecordProperty("workspace_mib", std::to_string(plan.workspace_bytes / kMiB));
  RecordProperty("kv_mib", std::to_string(plan.kv_capacity_tokens * plan.kv_bytes_per_token / kMiB));
  RecordProperty("prompt_tokens", std::to_string(prompt_tokens));
  RecordProperty("growth_during_prefill_mib", std::to_string(growth / kMiB));
  RecordProperty("engine_footprint_mib", std::to_string((start->free_bytes - lowest_free) / kMiB));
  EXPECT_LE(growth, kLazyModuleSlack) << "device memory grew by " << growth / kMiB << " MiB during the prefill";
  EXPECT_LE(start->free_bytes - lowest_free, planned + kContextSlack)
      << "the engine uses more than weights + KV + workspace (" << planned / kMiB << " MiB)";
}

}  // namespace
}  // namespace bpt
