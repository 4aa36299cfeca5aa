// Sampling on the device against the host's rules: greedy and penalties choose the token the
// host Sampler chooses, logprobs and top logprobs match, and with evenly spread draws every
// truncation (temperature, top-k, top-p, min-p) yields the distribution the host's rules
// define, token by token, masked (-inf) logits among them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "cuda_backend.h"
#include "model_config.h"
#include "sampler.h"
#include "cuda_test_util.h"

namespace bpt {
namespace {

constexpr int kVocab = 1000;
constexpr int kRows = 8;

class CudaSampling : public ::testing::Test {
 protected:
  void SetUp() override {
    BPT_SKIP_WITHOUT_CUDA();
    auto config = ParseModelConfig(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1000,
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 1,
        "num_key_value_heads": 1, "head_dim": 64})", "test");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    EngineOptions options;
    options.scheduler.max_running = kRows;
    auto backend = CudaBackend::Create(*config, options);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backend_ = std::move(backend).value();
    auto logits = backend_->AllocateActivation(kRows, kVocab, Precision::kFloat32);
    ASSERT_TRUE(logits.ok());
    logits_ = *logits;
    // Random logits with a spread like a model's, no two equal.
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    host_logits_.resize(kRows * kVocab);
    for (auto& l : host_logits_) l = normal(rng);
    ASSERT_TRUE(backend_->CopyFromHost(host_logits_.data(), logits_).ok());
  }

  const float* Row(int r) const { return host_logits_.data() + r * kVocab; }

  std::unique_ptr<CudaBackend> backend_;
  Tensor logits_;
  std::vector<float> host_logits_;
};

// The host's rules (engine/sampling/sampler.cpp) as a distribution over tokens.
std::vector<double> HostDistribution(const float* logits, const SamplingParams& p) {
  const float top = *std::max_element(logits, logits + kVocab);
  std::vector<double> prob(kVocab);
  for (int i = 0; i < kVocab; ++i) prob[i] = std::exp((static_cast<double>(logits[i]) - top) / p.temperature);
  std::vector<int> order(kVocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return prob[a] > prob[b] || (prob[a] == prob[b] && a < b); });
  size_t keep = kVocab;
  if (p.top_k > 0 && p.top_k < kVocab) keep = p.top_k;
  if (p.top_p < 1.0f) {
    double total = 0, cumulative = 0;
    for (size_t i = 0; i < keep; ++i) total += prob[order[i]];
    size_t i = 0;
    while (i < keep) {
      cumulative += prob[order[i]] / total;
      ++i;
      if (cumulative >= p.top_p) break;
    }
    keep = i;
  }
  std::vector<double> out(kVocab, 0.0);
  double total = 0;
  for (size_t i = 0; i < keep; ++i)
    if (p.min_p == 0.0f || prob[order[i]] >= p.min_p * prob[order[0]]) total += (out[order[i]] = prob[order[i]]);
  for (double& x : out) x /= total;
  return out;
}

TEST_F(CudaSampling, GreedyPenaltiesAndLogprobsMatchTheHostSampler) {
  std::vector<SamplingParams> params(kRows);
  params[1].repetition_penalty = 1.3f;
  params[2].presence_penalty = 1.5f;
  params[3].frequency_penalty = 0.7f;
  params[4].repetition_penalty = 0.8f;
  params[4].frequency_penalty = -0.5f;
  params[5].top_logprobs = 20;
  params[6].top_logprobs = 3;
  params[6].repetition_penalty = 2.0f;
  std::vector<std::unique_ptr<Sampler>> samplers;
  std::vector<SamplingRow> rows;
  for (int r = 0; r < kRows; ++r) {
    params[r].temperature = 0;
    // The prompt holds the row's best tokens, and it generated some of them, so penalties bite.
    std::vector<int32_t> order(kVocab);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return Row(r)[a] > Row(r)[b]; });
    samplers.push_back(std::make_unique<Sampler>(params[r], std::vector<int32_t>(order.begin(), order.begin() + 5)));
    for (int k = 0; k < 3; ++k) samplers.back()->Accept(order[k * 2]);
    samplers.back()->Accept(order[0]);
    rows.push_back(samplers.back()->NextRow());
  }
  std::vector<SampledToken> got;
  const Status s = backend_->Sample(logits_, rows, &got);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(got.size(), static_cast<size_t>(kRows));
  for (int r = 0; r < kRows; ++r) {
    std::vector<float> copy(Row(r), Row(r) + kVocab);
    const SampledToken want = samplers[r]->Sample(copy.data(), kVocab);
    EXPECT_EQ(got[r].token_id, want.token_id) << "row " << r;
    EXPECT_NEAR(got[r].logprob, want.logprob, 1e-4) << "row " << r;
    ASSERT_EQ(got[r].top_logprobs.size(), want.top_logprobs.size()) << "row " << r;
    for (size_t k = 0; k < want.top_logprobs.size(); ++k) {
      EXPECT_EQ(got[r].top_logprobs[k].first, want.top_logprobs[k].first) << "row " << r << " rank " << k;
      EXPECT_NEAR(got[r].top_logprobs[k].second, want.top_logprobs[k].second, 1e-4);
    }
  }
}

TEST_F(CudaSampling, TruncationsGiveTheHostDistribution) {
  std::vector<SamplingParams> params(kRows);
  params[0].temperature = 1.0f;
  params[1].temperature = 0.5f;
  params[2].temperature = 1.5f, params[2].top_k = 40;
  params[3].temperature = 1.0f, params[3].top_p = 0.9f;
  params[4].temperature = 0.7f, params[4].min_p = 0.05f;
  params[5].temperature = 1.2f, params[5].top_k = 100, params[5].top_p = 0.8f, params[5].min_p = 0.01f;
  params[6].temperature = 1.0f, params[6].top_k = 1;
  params[7].temperature = 2.0f, params[7].top_p = 0.5f;
  constexpr int kDraws = 4000;
  std::vector<std::vector<int>> counts(kRows, std::vector<int>(kVocab, 0));
  const std::vector<int32_t> no_prompt;
  const std::unordered_map<int32_t, int> no_outputs;
  std::vector<SampledToken> got;
  for (int d = 0; d < kDraws; ++d) {
    std::vector<SamplingRow> rows;
    for (int r = 0; r < kRows; ++r) rows.push_back({&params[r], (d + 0.5) / kDraws, &no_prompt, &no_outputs});
    const Status s = backend_->Sample(logits_, rows, &got);
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (int r = 0; r < kRows; ++r) ++counts[r][got[r].token_id];
  }
  for (int r = 0; r < kRows; ++r) {
    const std::vector<double> want = HostDistribution(Row(r), params[r]);
    for (int t = 0; t < kVocab; ++t) {
      // Evenly spread draws land within one of the expected count, plus rounding at the edges.
      EXPECT_NEAR(counts[r][t], want[t] * kDraws, 2.0) << "row " << r << " token " << t;
      if (want[t] == 0.0) {
        EXPECT_EQ(counts[r][t], 0) << "row " << r << " token " << t << " is truncated away";
      }
    }
  }
}

// Masked tokens (logit -inf, as a grammar or a logit bias leaves them) are never drawn, and the
// truncations still cut: the lowest logit no longer starts the threshold bisection at -inf
// (where its first midpoint was NaN and top-k and top-p kept every token).
TEST_F(CudaSampling, MaskedLogitsAreNeverDrawnAndTruncationsStillCut) {
  constexpr float kMasked = -INFINITY;
  // [kRows, kVocab]: about a third masked, the first and the last id among them; row 4 keeps 5
  // tokens (fewer than its top_k), row 5 one.
  std::vector<float> masked = host_logits_;
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kVocab; ++i)
      if ((i * 7 + r) % 3 == 0 || i == 0 || i == kVocab - 1) masked[r * kVocab + i] = kMasked;
  auto keep_only = [&](int r, std::initializer_list<int> ids) {
    std::fill(masked.begin() + r * kVocab, masked.begin() + (r + 1) * kVocab, kMasked);
    for (int i : ids) masked[r * kVocab + i] = host_logits_[r * kVocab + i];
  };
  keep_only(4, {1, 250, 500, 750, 998});
  keep_only(5, {500});
  auto tensor = backend_->AllocateActivation(kRows, kVocab, Precision::kFloat32);
  ASSERT_TRUE(tensor.ok());
  ASSERT_TRUE(backend_->CopyFromHost(masked.data(), *tensor).ok());

  std::vector<SamplingParams> params(kRows);
  params[0].temperature = 1.0f, params[0].top_k = 40;
  params[1].temperature = 1.0f, params[1].top_p = 0.9f;
  params[2].temperature = 0.8f, params[2].top_k = 100, params[2].top_p = 0.8f;
  params[3].temperature = 1.0f;  // no truncation: the threshold is the lowest finite logit
  params[4].temperature = 1.5f, params[4].top_k = 40;
  params[5].temperature = 1.0f, params[5].top_p = 0.5f;
  params[6].temperature = 0.7f, params[6].top_k = 20, params[6].min_p = 0.05f;
  params[7].temperature = 0.0f, params[7].top_logprobs = 5;
  constexpr int kDraws = 2000;
  std::vector<std::vector<int>> counts(kRows, std::vector<int>(kVocab, 0));
  const std::vector<int32_t> no_prompt;
  const std::unordered_map<int32_t, int> no_outputs;
  std::vector<SampledToken> got;
  for (int d = 0; d < kDraws; ++d) {
    std::vector<SamplingRow> rows;
    for (int r = 0; r < kRows; ++r) rows.push_back({&params[r], (d + 0.5) / kDraws, &no_prompt, &no_outputs});
    const Status s = backend_->Sample(*tensor, rows, &got);
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (int r = 0; r < kRows; ++r) {
      const int32_t token = got[r].token_id;
      ASSERT_TRUE(token >= 0 && token < kVocab) << "row " << r << " draw " << d << ": token " << token;
      ASSERT_TRUE(std::isfinite(masked[r * kVocab + token]))
          << "row " << r << " draw " << d << ": masked token " << token;
      ASSERT_TRUE(std::isfinite(got[r].logprob)) << "row " << r << " draw " << d << ": logprob " << got[r].logprob;
      for (const auto& [id, logprob] : got[r].top_logprobs)
        ASSERT_TRUE(std::isfinite(logprob)) << "row " << r << ": top logprob of " << id << " is " << logprob;
      ++counts[r][token];
    }
  }
  EXPECT_EQ(got[7].top_logprobs.size(), 5u);
  for (int r = 0; r < kRows; ++r) {
    if (params[r].temperature == 0.0f) continue;
    const std::vector<double> want = HostDistribution(masked.data() + r * kVocab, params[r]);
    for (int t = 0; t < kVocab; ++t) {
      EXPECT_NEAR(counts[r][t], want[t] * kDraws, 2.0) << "row " << r << " token " << t;
      if (want[t] == 0.0) {
        EXPECT_EQ(counts[r][t], 0) << "row " << r << " token " << t << " is truncated away";
      }
    }
  }
}

TEST_F(CudaSampling, TheSameDrawsGiveTheSameTokens) {
  SamplingParams params;
  params.temperature = 0.9f;
  params.top_p = 0.95f;
  params.seed = 42;
  auto run = [&] {
    Sampler sampler(params, {});
    std::vector<int32_t> tokens;
    std::vector<SampledToken> got;
    for (int i = 0; i < 200; ++i) {
      const Status s = backend_->Sample(logits_.Rows(0, 1), {sampler.NextRow()}, &got);
      EXPECT_TRUE(s.ok()) << s.ToString();
      tokens.push_back(got[0].token_id);
      sampler.Accept(got[0].token_id);
    }
    return tokens;
  };
  EXPECT_EQ(run(), run());
}

}  // namespace
}  // namespace bpt
