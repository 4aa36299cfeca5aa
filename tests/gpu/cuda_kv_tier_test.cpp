// The KV tiers below a GPU's pool: whole blocks copied between the pool and host memory (the
// copies against a naive reference of the layout), and the engine answering from the host tier
// and from disk exactly as from the pool, since a chunk is a copy of the pool's bf16 KV.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "cuda_backend.h"
#include "cuda_test_util.h"
#include "engine.h"
#include "model_config.h"
#include "temp_dir.h"
#include "test_models.h"

namespace bpt {
namespace {

using testing::TempDir;

// SmallConfig with head dim 64 and a GQA group of 2: within both attention backends.
nlohmann::json KvModelJson() {
  nlohmann::json j = testing::SmallConfig();
  j.update({{"vocab_size", 256}, {"hidden_size", 256}, {"intermediate_size", 512}, {"num_hidden_layers", 3},
            {"head_dim", 64}});
  return j;
}

ModelConfig KvConfig() {
  auto config = ParseModelConfig(KvModelJson().dump(), "kv tier test config");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return *config;
}

// Reads and writes against the layout written out by hand: host is
// [num_layers][2 (K, V)][blocks][block_size][kv_dim] bf16, so block i of layer l's V sits at
// ((l * 2 + 1) * blocks + i) * slab. Runs of consecutive blocks and scattered ones, a -1 that
// a write skips, blocks outside the pool refused, pageable and page-locked host buffers.
TEST(CudaKvBlocks, ReadAndWriteFollowTheHostLayout) {
  BPT_SKIP_WITHOUT_CUDA();
  const ModelConfig config = KvConfig();
  constexpr int kLayers = 3, kBlocks = 37, kBlockSize = 16;
  EngineOptions options;
  options.cuda.attention_backend = AttentionBackend::kOwn;
  auto backend = CudaBackend::Create(config, options);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  CudaBackend& gpu = **backend;
  ASSERT_TRUE(gpu.AllocateKvPool(kLayers, kBlocks, kBlockSize, config.kv_dim()).ok());
  const size_t slab = static_cast<size_t>(kBlockSize) * config.kv_dim() * 2;  // bf16
  ASSERT_EQ(gpu.KvBlockBytes(), static_cast<int64_t>(2 * kLayers * slab));

  const std::vector<int32_t> written = {5, 6, 7, 2, -1, 36, 0};
  const size_t n = written.size();
  std::vector<uint8_t> host(n * static_cast<size_t>(gpu.KvBlockBytes()));
  std::mt19937 rng(3);
  for (auto& b : host) b = static_cast<uint8_t>(rng());
  ASSERT_TRUE(gpu.WriteKvBlocks(written, host.data()).ok());

  // Read back in another order, through page-locked memory.
  const std::vector<int32_t> read = {36, 2, 5, 6, 7, 0, 11};
  const size_t bytes = read.size() * static_cast<size_t>(gpu.KvBlockBytes());
  uint8_t* pinned = static_cast<uint8_t*>(gpu.AllocatePinnedHostMemory(bytes));
  ASSERT_NE(pinned, nullptr);
  std::memset(pinned, 0xAB, bytes);
  const Status got = gpu.ReadKvBlocks(read, pinned);
  ASSERT_TRUE(got.ok()) << got.ToString();
  const std::vector<uint8_t> zero(slab, 0);
  for (int layer = 0; layer < kLayers; ++layer)
    for (int kv = 0; kv < 2; ++kv)
      for (size_t i = 0; i < read.size(); ++i) {
        const uint8_t* have = pinned + ((static_cast<size_t>(layer) * 2 + kv) * read.size() + i) * slab;
        const auto at = std::find(written.begin(), written.end(), read[i]);
        const uint8_t* want =
            at == written.end() ? zero.data()  // never written: the pool starts zeroed
                                : host.data() + ((static_cast<size_t>(layer) * 2 + kv) * n + (at - written.begin())) * slab;
        ASSERT_EQ(std::memcmp(have, want, slab), 0)
            << "layer " << layer << (kv == 0 ? " K" : " V") << " block " << read[i];
      }
  gpu.FreePinnedHostMemory(pinned);

  const std::vector<int32_t> outside = {3, kBlocks};
  EXPECT_EQ(gpu.ReadKvBlocks(outside, host.data()).code(), StatusCode::kInternal);
  EXPECT_EQ(gpu.WriteKvBlocks(outside, host.data()).code(), StatusCode::kInternal);
  const std::vector<int32_t> skipped = {-1};
  EXPECT_EQ(gpu.ReadKvBlocks(skipped, host.data()).code(), StatusCode::kInternal) << "a read has no block to skip";
  EXPECT_TRUE(gpu.WaitForSteps().ok());
}

// A document answered, flushed to the tiers, then evicted from the pool: the next question loads
// it from host memory, and on a restarted server from disk, and both answers are bit for bit
// the pool hit's (the same KV, the same tail computed). 970 tokens: the pool's full blocks and
// the tiers' full chunks both end at 960, so every case computes the same 10 tokens.
TEST(CudaKvTiers, HostAndDiskAnswerExactlyAsThePoolDoes) {
  BPT_SKIP_WITHOUT_CUDA();
  TempDir model, disk;
  testing::WriteModelOrDie(model.path(), KvModelJson(), DType::kBF16, 21);
  EngineOptions options;
  options.model_dir = model.path();
  options.device = "cuda";
  options.kv_cache.block_size = 16;
  options.kv_cache.capacity_tokens = 4096;
  options.kv_cache.shuffle_blocks = true;
  options.kv_tiers.chunk_tokens = 64;
  options.kv_tiers.host_gib = 0.25;
  options.kv_tiers.disk_dir = disk.path() + "/tier";
  options.kv_tiers.disk_gib = 1;
  std::mt19937 rng(5);
  GenerationRequest ask;
  for (int i = 0; i < 970; ++i) ask.prompt.push_back(static_cast<int32_t>(3 + rng() % 250));
  ask.sampling.temperature = 0;
  ask.sampling.top_logprobs = 3;
  ask.stopping.max_new_tokens = 8;
  ask.stopping.ignore_eos = true;
  struct Answer {
    std::vector<int32_t> tokens;
    std::vector<float> logprobs;
    CachedTokenSources from;
  };
  const auto answer = [&](Engine& engine) {
    struct Logprobs : GenerationObserver {
      std::vector<float> values;
      bool OnToken(const TokenOutput& t) override {
        values.push_back(t.logprob);
        return true;
      }
    } observer;
    auto r = engine.Generate(ask, &observer);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Answer{r->token_ids, observer.values, r->cached_from} : Answer{};
  };

  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_EQ((*engine)->model_info().kv_tiers, "host,disk");
  answer(**engine);
  ASSERT_TRUE((*engine)->FlushKvTiers(std::chrono::steady_clock::now() + std::chrono::minutes(5)));
  const Answer pool = answer(**engine);
  EXPECT_EQ(pool.from.pool, 960);
  // Its writes (each chunk is held already) hold the blocks until they end; then the reset evicts.
  ASSERT_TRUE((*engine)->FlushKvTiers(std::chrono::steady_clock::now() + std::chrono::minutes(5)));
  (*engine)->ResetPrefixCache();
  const Answer host = answer(**engine);
  EXPECT_EQ(host.from.host, 960);
  EXPECT_EQ(host.tokens, pool.tokens);
  EXPECT_EQ(host.logprobs, pool.logprobs) << "a chunk from host memory is a copy of the pool's KV";
  ASSERT_TRUE((*engine)->FlushKvTiers(std::chrono::steady_clock::now() + std::chrono::minutes(5)));
  const KvTierStats stats = (*engine)->TakeKvTierStats();
  ASSERT_EQ(stats.tiers.size(), 2u);
  EXPECT_EQ(stats.tiers[0].name, "host");
  EXPECT_GT(stats.tiers[0].bytes_used, 0);
  EXPECT_EQ(stats.tiers[0].load_errors + stats.tiers[0].store_errors, 0);
  EXPECT_EQ((*engine)->kv_free_tokens(), (*engine)->kv_capacity_tokens()) << "no block left held";
  engine->reset();

  options.kv_tiers.host_gib = 0;  // a restart: host memory is gone, the disk is not
  auto restarted = Engine::Create(options);
  ASSERT_TRUE(restarted.ok()) << restarted.status().ToString();
  const Answer from_disk = answer(**restarted);
  EXPECT_EQ(from_disk.from.disk, 960);
  EXPECT_EQ(from_disk.tokens, pool.tokens);
  EXPECT_EQ(from_disk.logprobs, pool.logprobs);
}

}  // namespace
}  // namespace bpt
