// The BPT prefill gives the same answer however the prompt is cut into blocks, wherever its KV
// blocks lie in the pool, and whether the last token comes by prefill or by a decode step.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine.h"
#include "test_models.h"

namespace bpt {
namespace {

using testing::SmallConfig;
using testing::TempDir;

class PrefillConsistencyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    nlohmann::json config = SmallConfig();
    config["num_attention_heads"] = 8;
    config["head_dim"] = 8;
    config["num_key_value_heads"] = 2;
    testing::WriteModelOrDie((*dir_) / "model", config, DType::kBF16, 5);
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::unique_ptr<Engine> Make(int prefill_block, int kv_block_size, bool shuffle) {
    EngineOptions options;
    options.model_dir = (*dir_) / "model";
    options.scheduler.prefill_block = prefill_block;
    options.kv_cache.block_size = kv_block_size;
    options.kv_cache.shuffle_blocks = shuffle;
    options.kv_cache.capacity_tokens = 2048;
    auto engine = Engine::Create(options);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(engine).value() : nullptr;
  }

  static std::vector<int32_t> Prompt(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> p(n);
    for (auto& t : p) t = static_cast<int32_t>(rng() % 97);
    return p;
  }

  static TempDir* dir_;
};

TempDir* PrefillConsistencyTest::dir_ = nullptr;

double MaxAbs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

TEST_F(PrefillConsistencyTest, KvBlockSizeAndPlacementChangeNothing) {
  const auto prompt = Prompt(301, 1);
  auto base = Make(64, 64, false);
  const auto expected = base->PromptLogits(prompt);
  ASSERT_TRUE(expected.ok());
  for (int kv_block : {1, 3, 16, 64, 512}) {
    for (bool shuffle : {false, true}) {
      auto engine = Make(64, kv_block, shuffle);
      const auto got = engine->PromptLogits(prompt);
      ASSERT_TRUE(got.ok());
      // Same arithmetic in the same order: only the addresses of the keys differ.
      EXPECT_EQ(*got, *expected) << "kv_block_size " << kv_block << " shuffled " << shuffle;
    }
  }
}

TEST_F(PrefillConsistencyTest, PrefillBlockSizeChangesOnlyRounding) {
  const auto prompt = Prompt(301, 2);
  auto whole = Make(512, 16, false);
  const auto expected = whole->PromptLogits(prompt);
  ASSERT_TRUE(expected.ok());
  for (int block : {1, 7, 64, 300, 301}) {
    auto engine = Make(block, 16, true);
    const auto got = engine->PromptLogits(prompt);
    ASSERT_TRUE(got.ok());
    double diff = 0;
    for (size_t i = 0; i < got->size(); ++i) diff = std::max(diff, std::fabs(double((*got)[i]) - (*expected)[i]));
    // GEMMs of different heights may sum in a different order (fp32).
    EXPECT_LE(diff, 1e-5 * MaxAbs(*expected)) << "prefill block " << block;
  }
}

TEST_F(PrefillConsistencyTest, PrefillThenDecodeEqualsLongerPrefill) {
  auto engine = Make(32, 8, true);
  const auto prompt = Prompt(100, 3);
  GenerationRequest request;
  request.prompt = prompt;
  request.sampling.temperature = 0;
  request.sampling.top_logprobs = kMaxTopLogprobs;
  request.stopping.max_new_tokens = 2;
  request.stopping.ignore_eos = true;
  auto result = engine->Generate(request, nullptr);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->token_ids.size(), 2u);

  // The second token came from a decode step over prompt + first token; prefill that instead.
  struct Capture : GenerationObserver {
    std::vector<TokenOutput> tokens;
    bool OnToken(const TokenOutput& t) override {
      tokens.push_back(t);
      return true;
    }
  } capture;
  ASSERT_TRUE(engine->Generate(request, &capture).ok());
  auto extended = prompt;
  extended.push_back(result->token_ids[0]);
  const auto logits = engine->PromptLogits(extended);
  ASSERT_TRUE(logits.ok());
  double max_logit = -1e30, z = 0;
  for (float l : *logits) max_logit = std::max<double>(max_logit, l);
  for (float l : *logits) z += std::exp(l - max_logit);
  const auto& decoded = capture.tokens[1].top_logprobs;
  ASSERT_EQ(decoded.size(), static_cast<size_t>(kMaxTopLogprobs));
  for (const auto& [id, logprob] : decoded) {
    const double expected = (*logits)[id] - max_logit - std::log(z);
    EXPECT_NEAR(logprob, expected, 1e-4) << "token " << id;
  }
}

TEST_F(PrefillConsistencyTest, GreedyTokensAreArgmaxOfPrefill) {
  auto engine = Make(16, 4, true);
  GenerationRequest request;
  request.prompt = Prompt(50, 4);
  request.sampling.temperature = 0;
  request.stopping.max_new_tokens = 12;
  request.stopping.ignore_eos = true;
  auto result = engine->Generate(request, nullptr);
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->token_ids.size(), 12u);
  auto context = request.prompt;
  for (int32_t token : result->token_ids) {
    const auto logits = engine->PromptLogits(context);
    ASSERT_TRUE(logits.ok());
    std::vector<float> sorted = *logits;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    if (sorted[0] - sorted[1] > 1e-4f) {  // a near tie may go either way in fp32
      EXPECT_EQ(token, std::max_element(logits->begin(), logits->end()) - logits->begin());
    }
    context.push_back(token);
  }
  EXPECT_EQ(engine->kv_free_tokens(), engine->kv_capacity_tokens()) << "every KV block returned";
}

}  // namespace
}  // namespace bpt
