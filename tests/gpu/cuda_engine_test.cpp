// The whole engine on the CUDA backend against the CPU backend: prompt logits on random
// models, greedy generation, continuous batching and the prefix cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <string>

#include "cuda_backend.h"
#include "engine.h"
#include "model_runner.h"
#include "cuda_test_util.h"
#include "test_models.h"

namespace bpt {
namespace {

using testing::TempDir;

// bf16 weights written to disk, so both backends run the same weights; the CPU keeps every
// activation in fp32, the GPU rounds each to bf16 (about ten roundings per layer, each within
// 2^-9): over four layers the logits may differ by a few percent, not more.
constexpr double kLogitTolerance = 3e-2;

nlohmann::json ModelJson(int head_dim, int heads, int kv_heads) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 512},
          {"hidden_size", heads * head_dim},
          {"intermediate_size", 3 * heads * head_dim},
          {"num_hidden_layers", 4},
          {"num_attention_heads", heads},
          {"num_key_value_heads", kv_heads},
          {"head_dim", head_dim},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"max_position_embeddings", 1 << 16},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"tie_word_embeddings", false}};
}

std::unique_ptr<Engine> MakeEngine(const std::string& dir, const std::string& device, int prefill_block = 128,
                                   int64_t kv_capacity = 1 << 14, int max_running = 8) {
  EngineOptions options;
  options.model_dir = dir;
  options.device = device;
  options.scheduler.prefill_block = prefill_block;
  options.kv_cache.block_size = 16;
  options.kv_cache.capacity_tokens = kv_capacity;
  options.scheduler.max_running = max_running;
  options.kv_cache.shuffle_blocks = true;
  auto engine = Engine::Create(options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return engine.ok() ? std::move(engine).value() : nullptr;
}

std::vector<int32_t> RandomPrompt(int length, uint32_t seed, int vocab = 512) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(length);
  for (auto& t : p) t = static_cast<int32_t>(3 + rng() % (vocab - 3));
  return p;
}

// Two computations of the same greedy sequence need not give the same tokens: the CPU keeps fp32
// and the GPU bf16, and on the GPU cuBLAS may pick another kernel for another row count (a batch,
// a prefill chunk cut elsewhere by a prefix-cache hit), which rounds differently. Where the
// reference's top two candidates are a near tie, the sequences may part, and what follows is not
// comparable; anywhere else they must agree. A near tie is a top-2 logit margin below
// min(2 x noise, 0.05), noise being the largest logit difference measured between the GPU and the
// CPU on the same prompt: two runs each within noise of the CPU's logits differ by at most twice
// that. The cap keeps a GPU whose error has grown from excusing the divergence its error causes.
constexpr float kMaxNearTie = 0.05f;
float NearTie(float noise) { return std::min(2 * noise, kMaxNearTie); }

// max |gpu - cpu| over the logits after `prompt`.
float LogitNoise(Engine& cpu, Engine& gpu, const std::vector<int32_t>& prompt) {
  auto want = cpu.PromptLogits(prompt);
  auto got = gpu.PromptLogits(prompt);
  EXPECT_TRUE(want.ok() && got.ok());
  if (!want.ok() || !got.ok()) return 0;
  float noise = 0;
  for (size_t i = 0; i < want->size(); ++i) noise = std::max(noise, std::abs((*got)[i] - (*want)[i]));
  return noise;
}

// The reference run's top-2 margin at each generated token (logprob differences are logit
// differences). Needs top_logprobs >= 2, which Greedy asks for.
struct TopTwoMargins : GenerationObserver {
  std::vector<float> margins;
  std::optional<StatusOr<GenerationResult>> result;
  bool OnToken(const TokenOutput& t) override {
    margins.push_back(t.top_logprobs.size() >= 2 ? t.top_logprobs[0].second - t.top_logprobs[1].second : 1e9f);
    return true;
  }
  void OnFinished(const StatusOr<GenerationResult>& r) override { result = r; }
};

// Compares `got` with the reference token by token up to their first difference, which must sit at
// a near tie of the reference; returns how many tokens agreed before it (all of them if none).
size_t AgreeUpToANearTie(const std::vector<int32_t>& want, const std::vector<float>& want_margins,
                         const std::vector<int32_t>& got, float noise, const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  EXPECT_EQ(want_margins.size(), want.size()) << what;
  const size_t n = std::min({want.size(), got.size(), want_margins.size()});
  for (size_t i = 0; i < n; ++i)
    if (got[i] != want[i]) {
      EXPECT_LT(want_margins[i], NearTie(noise))
          << what << " step " << i << ": the tokens differ where the reference's margin is " << want_margins[i]
          << " and the logits differ by at most " << noise << " (near-tie threshold " << NearTie(noise) << ")";
      return i;
    }
  return n;
}

GenerationRequest Greedy(std::vector<int32_t> prompt, int max_new_tokens, bool use_prefix_cache = false) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0;
  r.sampling.top_logprobs = 2;
  r.stopping.max_new_tokens = max_new_tokens;
  r.stopping.ignore_eos = true;
  r.use_prefix_cache = use_prefix_cache;
  return r;
}

class CudaEngine : public ::testing::TestWithParam<std::tuple<int, int, int>> {
 protected:
  void SetUp() override {
    BPT_SKIP_WITHOUT_CUDA();
    const auto [head_dim, heads, kv_heads] = GetParam();
    testing::WriteModelOrDie(dir_.path(), ModelJson(head_dim, heads, kv_heads), DType::kBF16, 7);
  }
  TempDir dir_;
};

TEST_P(CudaEngine, PromptLogitsMatchCpu) {
  auto cpu = MakeEngine(dir_.path(), "cpu");
  auto gpu = MakeEngine(dir_.path(), "cuda");
  ASSERT_TRUE(cpu && gpu);
  EXPECT_EQ(gpu->model_info().device, "cuda");
  EXPECT_EQ(gpu->model_info().dtype, "bfloat16");
  for (int length : {1, 17, 128, 129, 1000, 3001}) {
    const auto prompt = RandomPrompt(length, length);
    auto want = cpu->PromptLogits(prompt);
    auto got = gpu->PromptLogits(prompt);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
    ASSERT_TRUE(testing::AllFinite(*got));
    EXPECT_LE(testing::RelativeError(*got, *want), kLogitTolerance) << "prompt of " << length << " tokens";
  }
}

// Greedy tokens agree with the CPU for 32 steps, up to a near tie of the CPU's (AgreeUpToANearTie).
TEST_P(CudaEngine, GreedyTokensAgreeWithCpu) {
  auto cpu = MakeEngine(dir_.path(), "cpu");
  auto gpu = MakeEngine(dir_.path(), "cuda");
  ASSERT_TRUE(cpu && gpu);
  size_t compared = 0;
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto request = Greedy(RandomPrompt(200 + 50 * seed, seed), 32);
    const float noise = LogitNoise(*cpu, *gpu, request.prompt);
    TopTwoMargins cpu_margins;
    auto want = cpu->Generate(request, &cpu_margins);
    auto got = gpu->Generate(request, nullptr);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
    ASSERT_EQ(got->token_ids.size(), 32u);
    compared += AgreeUpToANearTie(want->token_ids, cpu_margins.margins, got->token_ids, noise,
                                  "seed " + std::to_string(seed));
  }
  EXPECT_GE(compared, 48u) << "too few steps were comparable to say the backends agree";
}

// Batched on the GPU equals one at a time on the GPU, up to a near tie of the run alone: a batch
// has other row counts than a request alone, and cuBLAS may round them differently.
TEST_P(CudaEngine, BatchedGenerationEqualsOneAtATime) {
  const std::vector<std::pair<int, int>> shapes = {{1, 9}, {7, 14}, {33, 5}, {64, 12}, {150, 8}, {301, 10}};
  auto cpu = MakeEngine(dir_.path(), "cpu", 64);
  auto alone = MakeEngine(dir_.path(), "cuda", 64);
  auto batched = MakeEngine(dir_.path(), "cuda", 64);
  ASSERT_TRUE(cpu && alone && batched);
  std::vector<TopTwoMargins> expected(shapes.size());
  std::vector<float> noise(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto request = Greedy(RandomPrompt(shapes[i].first, 40 + i), shapes[i].second);
    noise[i] = LogitNoise(*cpu, *alone, request.prompt);
    auto r = alone->Generate(request, &expected[i]);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  std::vector<TopTwoMargins> keeps(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i)
    ASSERT_TRUE(batched->Submit(Greedy(RandomPrompt(shapes[i].first, 40 + i), shapes[i].second), &keeps[i]).ok());
  for (int guard = 0; batched->HasWork(); ++guard) {
    batched->Step();
    ASSERT_LT(guard, 10000);
  }
  size_t compared = 0, total = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    ASSERT_TRUE(expected[i].result && expected[i].result->ok());
    ASSERT_TRUE(keeps[i].result && keeps[i].result->ok());
    compared += AgreeUpToANearTie((*expected[i].result)->token_ids, expected[i].margins,
                                  (*keeps[i].result)->token_ids, noise[i], "request " + std::to_string(i));
    total += shapes[i].second;
  }
  EXPECT_GE(compared, total / 2) << "too few tokens were comparable to say batching changes nothing";
}

// The second request finds the document's blocks and computes only its last chunk; its tokens equal
// the first's up to a near tie of the first's, since a 16-row chunk may round otherwise than the
// 128-row chunks the first computed.
TEST_P(CudaEngine, PrefixCacheReusesBlocksWithSameTokens) {
  auto cpu = MakeEngine(dir_.path(), "cpu", 128);
  auto engine = MakeEngine(dir_.path(), "cuda", 128);
  ASSERT_TRUE(cpu && engine);
  const auto document = RandomPrompt(2000, 77);
  const float noise = LogitNoise(*cpu, *engine, document);
  TopTwoMargins first_margins;
  auto first = engine->Generate(Greedy(document, 16, true), &first_margins);
  auto second = engine->Generate(Greedy(document, 16, true), nullptr);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->cached_prompt_tokens, 0);
  EXPECT_EQ(second->cached_prompt_tokens, (2000 - 1) / 16 * 16);  // full blocks before the last token
  EXPECT_GE(AgreeUpToANearTie(first->token_ids, first_margins.margins, second->token_ids, noise, "cached"), 8u)
      << "too few tokens were comparable to say the cache changes nothing";
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaEngine,
                         ::testing::Values(std::tuple{64, 8, 2}, std::tuple{128, 8, 1}, std::tuple{64, 4, 4}),
                         [](const auto& info) {
                           return "d" + std::to_string(std::get<0>(info.param)) + "_h" +
                                  std::to_string(std::get<1>(info.param)) + "_kv" +
                                  std::to_string(std::get<2>(info.param));
                         });

// Decode steps replayed from captured graphs give the logits that op-by-op launches give, for
// every batch size and as contexts grow past split boundaries (new graphs are captured).
TEST(CudaDecodeGraphs, ReplaysMatchOpByOpLaunches) {
  BPT_SKIP_WITHOUT_CUDA();
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), ModelJson(64, 8, 2), DType::kBF16, 9);
  auto config = LoadModelConfig(dir.path());
  ASSERT_TRUE(config.ok());
  auto weights = ModelWeights::Open(dir.path(), *config);
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  struct Setup {
    std::unique_ptr<ModelRunner> runner;
    CudaBackend* backend;
  };
  auto make = [&](bool graphs) {
    EngineOptions options;
    options.scheduler.prefill_block = 512;
    options.scheduler.max_running = 4;
    options.cuda.graphs = graphs;
    auto backend = CudaBackend::Create(*config, options);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    CudaBackend* raw = backend->get();
    EXPECT_TRUE(raw->AllocateKvPool(config->num_layers, 1024, 16, config->kv_dim()).ok());
    auto runner = ModelRunner::Create(*config, **weights, std::move(backend).value(), options);
    EXPECT_TRUE(runner.ok()) << runner.status().ToString();
    return Setup{std::move(runner).value(), raw};
  };
  Setup with = make(true), without = make(false);
  KvBlockManager blocks(1024, 16);
  std::vector<BlockTable> tables(4);
  std::vector<int64_t> lengths = {300, 5, 1000, 64};
  for (size_t i = 0; i < tables.size(); ++i) ASSERT_TRUE(blocks.Reserve(&tables[i], lengths[i] + 700).ok());
  std::vector<float> a, b;
  for (size_t i = 0; i < tables.size(); ++i) {  // prompts, one sequence per step
    for (int64_t pos = 0; pos < lengths[i]; pos += 512) {
      const int32_t n = static_cast<int32_t>(std::min<int64_t>(512, lengths[i] - pos));
      StepLayout step;
      step.token_ids = RandomPrompt(n, 11 + i + pos);
      step.sequences.push_back({pos, n, &tables[i], pos + n == lengths[i]});
      ASSERT_TRUE(with.runner->Forward(step, &a).ok());
      ASSERT_TRUE(without.runner->Forward(step, &b).ok());
    }
  }
  std::mt19937 rng(5);
  for (int iteration = 0; iteration < 600; ++iteration) {  // decodes in batches of 1 to 4
    const size_t batch = 1 + iteration % 4;
    StepLayout step;
    for (size_t i = 0; i < batch; ++i) {
      step.token_ids.push_back(static_cast<int32_t>(3 + rng() % 500));
      step.sequences.push_back({lengths[i]++, 1, &tables[i], true});
    }
    ASSERT_TRUE(with.runner->Forward(step, &a).ok());
    ASSERT_TRUE(without.runner->Forward(step, &b).ok());
    ASSERT_EQ(a, b) << "decode iteration " << iteration;
  }
  EXPECT_GE(with.backend->graphs_captured(), 4);
  EXPECT_GE(with.backend->graph_replays(), 500);
  EXPECT_EQ(without.backend->graphs_captured(), 0);
}

// Decode steps replayed from captured graphs and sampled on the device draw what op-by-op
// launches draw: the same tokens, logprobs and top logprobs, each token fed back as the next
// input, for every batch size, as contexts cross split boundaries (new graphs are captured), with
// each attention backend.
class CudaDecodeGraphsSampling : public ::testing::TestWithParam<AttentionBackend> {
 protected:
  void SetUp() override { BPT_SKIP_WITHOUT_CUDA(); }
};

TEST_P(CudaDecodeGraphsSampling, ReplaysSampleWhatOpByOpLaunchesSample) {
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), ModelJson(64, 8, 2), DType::kBF16, 13);
  auto config = LoadModelConfig(dir.path());
  ASSERT_TRUE(config.ok());
  auto weights = ModelWeights::Open(dir.path(), *config);
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  std::unique_ptr<ModelRunner> runners[2];  // graphs on, off
  CudaBackend* backends[2];
  for (int graphs = 0; graphs < 2; ++graphs) {
    EngineOptions options;
    options.scheduler.prefill_block = 512;
    options.scheduler.max_running = 4;
    options.cuda.graphs = graphs == 0;
    options.cuda.device_sampling = true;
    options.cuda.attention_backend = GetParam();
    auto backend = CudaBackend::Create(*config, options);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backends[graphs] = backend->get();
    const Status pool = backends[graphs]->AllocateKvPool(config->num_layers, 1024, 16, config->kv_dim());
    ASSERT_TRUE(pool.ok()) << pool.ToString();
    ASSERT_EQ(backends[graphs]->attention_kernels(), GetParam() == AttentionBackend::kCudnn ? "cudnn" : "cuda");
    auto runner = ModelRunner::Create(*config, **weights, std::move(backend).value(), options);
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    runners[graphs] = std::move(runner).value();
  }
  ASSERT_TRUE(backends[0]->SamplesOnDevice());

  // Sequence 0 decodes every step and crosses 1024 keys, sequence 2 every other step and crosses
  // 256: the own kernels' decode grid grows there.
  std::vector<int64_t> lengths = {1000, 5, 230, 64};
  KvBlockManager blocks(1024, 16);
  std::vector<BlockTable> tables(lengths.size());
  std::vector<std::vector<int32_t>> prompts(lengths.size());
  std::vector<float> logits;
  for (size_t i = 0; i < lengths.size(); ++i) {
    ASSERT_TRUE(blocks.Reserve(&tables[i], lengths[i] + 300).ok());
    prompts[i] = RandomPrompt(static_cast<int>(lengths[i]), 21 + i);
    for (int64_t pos = 0; pos < lengths[i]; pos += 512) {  // one sequence per step
      const int32_t n = static_cast<int32_t>(std::min<int64_t>(512, lengths[i] - pos));
      StepLayout step;
      step.token_ids.assign(prompts[i].begin() + pos, prompts[i].begin() + pos + n);
      step.sequences.push_back({pos, n, &tables[i], false});
      for (auto& runner : runners) ASSERT_TRUE(runner->Forward(step, &logits).ok());
    }
  }
  // Each runner's own samplers, equal seeds and parameters: every truncation and penalty.
  std::vector<SamplingParams> params(lengths.size());
  params[0].temperature = 0.8f, params[0].top_p = 0.9f, params[0].seed = 1;
  params[1].temperature = 1.0f, params[1].top_k = 40, params[1].repetition_penalty = 1.1f, params[1].seed = 2;
  params[2].temperature = 0.0f, params[2].frequency_penalty = 0.5f, params[2].top_logprobs = 3;
  params[3].temperature = 0.7f, params[3].min_p = 0.05f, params[3].presence_penalty = 0.3f, params[3].seed = 4;
  params[3].top_logprobs = 2;
  std::vector<std::unique_ptr<Sampler>> samplers[2];
  for (auto& set : samplers)
    for (size_t i = 0; i < params.size(); ++i) set.push_back(std::make_unique<Sampler>(params[i], prompts[i]));
  std::vector<int32_t> next = {3, 4, 5, 6};
  for (int iteration = 0; iteration < 240; ++iteration) {
    const size_t batch = 1 + iteration % 4;
    StepLayout step;
    for (size_t i = 0; i < batch; ++i) {
      step.token_ids.push_back(next[i]);
      step.sequences.push_back({lengths[i]++, 1, &tables[i], true});
    }
    std::vector<SampledToken> sampled[2];
    for (int r = 0; r < 2; ++r) {
      std::vector<SamplingRow> rows;
      for (size_t i = 0; i < batch; ++i) rows.push_back(samplers[r][i]->NextRow());
      const Status s = runners[r]->ForwardAndSample(step, rows, &sampled[r]);
      ASSERT_TRUE(s.ok()) << "decode iteration " << iteration << ": " << s.ToString();
      ASSERT_EQ(sampled[r].size(), batch);
    }
    for (size_t i = 0; i < batch; ++i) {
      const SampledToken &replayed = sampled[0][i], &launched = sampled[1][i];
      ASSERT_EQ(replayed.token_id, launched.token_id) << "decode iteration " << iteration << ", sequence " << i;
      ASSERT_EQ(replayed.logprob, launched.logprob) << "decode iteration " << iteration << ", sequence " << i;
      ASSERT_EQ(replayed.top_logprobs, launched.top_logprobs) << "decode iteration " << iteration << ", sequence " << i;
      ASSERT_TRUE(std::isfinite(replayed.logprob));
      for (auto& set : samplers) set[i]->Accept(replayed.token_id);
      next[i] = replayed.token_id;
    }
  }
  EXPECT_GE(backends[0]->graphs_captured(), 4);
  EXPECT_GE(backends[0]->graph_replays(), 200);
  EXPECT_EQ(backends[1]->graphs_captured(), 0);
}

std::string BackendName(const ::testing::TestParamInfo<AttentionBackend>& info) {
  return AttentionBackendName(info.param);
}
INSTANTIATE_TEST_SUITE_P(Own, CudaDecodeGraphsSampling, ::testing::Values(AttentionBackend::kOwn), BackendName);
INSTANTIATE_TEST_SUITE_P(Cudnn, CudaDecodeGraphsSampling, ::testing::Values(AttentionBackend::kCudnn), BackendName);

// A prompt larger than the KV pool is refused before any work, with the limit in the message.
TEST(CudaEngineLimits, PromptBeyondThePoolIsRefusedUpFront) {
  BPT_SKIP_WITHOUT_CUDA();
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), ModelJson(64, 8, 2), DType::kBF16, 7);
  auto engine = MakeEngine(dir.path(), "cuda", 128, 4096);
  ASSERT_TRUE(engine);
  GenerationRequest r = Greedy(RandomPrompt(5000, 1), 4);
  const Status s = engine->Submit(r, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("4096"), std::string::npos) << s.ToString();
}

// With no capacity given, the pool takes its share of the device memory left after the
// weights and the workspace.
TEST(CudaEngineLimits, DefaultPoolTakesTheConfiguredShareOfFreeMemory) {
  BPT_SKIP_WITHOUT_CUDA();
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), ModelJson(64, 8, 2), DType::kBF16, 7);
  auto before = CudaMemoryInfoNow(0);
  ASSERT_TRUE(before.ok());
  EngineOptions options;
  options.model_dir = dir.path();
  options.device = "cuda";
  options.kv_cache.memory_fraction = 0.5;
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const MemoryPlan plan = (*engine)->memory_plan();
  const double kv_bytes = static_cast<double>(plan.kv_capacity_tokens) * plan.kv_bytes_per_token;
  const double left = static_cast<double>(before->free_bytes - plan.weight_bytes - plan.workspace_bytes);
  EXPECT_NEAR(kv_bytes / left, 0.5, 0.02);
}

}  // namespace
}  // namespace bpt
