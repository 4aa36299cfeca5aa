#include <gtest/gtest.h>

#include <cmath>

#include "sampler.h"
#include "sampling_params.h"
#include "stop_string_matcher.h"

namespace bpt {
namespace {

std::vector<float> LogitsOf(std::vector<double> probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

std::vector<int> Counts(SamplingParams params, const std::vector<float>& logits, int draws) {
  params.seed = 1234;
  Sampler sampler(params, {});
  std::vector<int> counts(logits.size());
  for (int i = 0; i < draws; ++i) {
    auto l = logits;
    ++counts[sampler.Sample(l.data(), static_cast<int>(l.size())).token_id];
  }
  return counts;
}

TEST(Sampler, GreedyPicksTheArgmax) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, {});
  std::vector<float> l = {0.1f, 2.5f, -1.0f, 2.4f};
  EXPECT_EQ(s.Sample(l.data(), 4).token_id, 1);
}

TEST(Sampler, TemperatureOneFollowsTheDistribution) {
  const auto counts = Counts(SamplingParams{}, LogitsOf({0.5, 0.3, 0.2}), 20000);
  EXPECT_NEAR(counts[0] / 20000.0, 0.5, 0.015);
  EXPECT_NEAR(counts[1] / 20000.0, 0.3, 0.015);
  EXPECT_NEAR(counts[2] / 20000.0, 0.2, 0.015);
}

TEST(Sampler, LowTemperatureSharpens) {
  SamplingParams p;
  p.temperature = 0.25f;  // p^4 normalized: 0.5^4 : 0.3^4 : 0.2^4 = 0.0625 : 0.0081 : 0.0016
  const auto counts = Counts(p, LogitsOf({0.5, 0.3, 0.2}), 20000);
  EXPECT_NEAR(counts[0] / 20000.0, 0.0625 / 0.0722, 0.015);
}

TEST(Sampler, TopKTopPMinPTruncate) {
  const auto logits = LogitsOf({0.4, 0.3, 0.2, 0.1});
  SamplingParams top_k;
  top_k.top_k = 2;
  auto c = Counts(top_k, logits, 5000);
  EXPECT_EQ(c[2] + c[3], 0);
  EXPECT_NEAR(c[0] / 5000.0, 0.4 / 0.7, 0.03);

  SamplingParams top_p;
  top_p.top_p = 0.65f;  // 0.4 + 0.3 reaches it: keep two
  c = Counts(top_p, logits, 5000);
  EXPECT_EQ(c[2] + c[3], 0);
  EXPECT_GT(c[1], 0);

  SamplingParams min_p;
  min_p.min_p = 0.5f;  // keep p >= 0.2
  c = Counts(min_p, logits, 5000);
  EXPECT_EQ(c[3], 0);
  EXPECT_GT(c[2], 0);

  SamplingParams tight;
  tight.top_p = 1e-6f;
  c = Counts(tight, logits, 200);
  EXPECT_EQ(c[0], 200);
}

TEST(Sampler, SameSeedSameTokensAndDifferentSeedDiffers) {
  const auto logits = LogitsOf({0.25, 0.25, 0.25, 0.25});
  auto run = [&](uint64_t seed) {
    SamplingParams p;
    p.seed = seed;
    Sampler s(p, {});
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) {
      auto l = logits;
      out.push_back(s.Sample(l.data(), 4).token_id);
    }
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(Sampler, PenaltiesFollowVllmSemantics) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler rep(p, /*prompt_ids=*/{0, 2});
  std::vector<float> l = {2.0f, 1.5f, -1.0f, -1.5f};
  rep.Sample(l.data(), 4);
  EXPECT_FLOAT_EQ(l[0], 1.0f);   // positive: divided
  EXPECT_FLOAT_EQ(l[1], 1.5f);   // not seen
  EXPECT_FLOAT_EQ(l[2], -2.0f);  // negative: multiplied
  EXPECT_FLOAT_EQ(l[3], -1.5f);

  SamplingParams f;
  f.temperature = 0;
  f.frequency_penalty = 0.5f;
  f.presence_penalty = 0.25f;
  Sampler freq(f, /*prompt_ids=*/{1});  // presence and frequency count generated tokens only
  freq.Accept(0);
  freq.Accept(0);
  std::vector<float> m = {3.0f, 2.0f, 0.0f};
  EXPECT_EQ(freq.Sample(m.data(), 3).token_id, 1);
  EXPECT_FLOAT_EQ(m[0], 3.0f - 2 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(m[1], 2.0f);
}

TEST(Sampler, ReportsRawLogprobsAndSortedTopLogprobs) {
  SamplingParams p;
  p.temperature = 0;
  p.top_logprobs = 3;
  p.repetition_penalty = 5.0f;
  Sampler s(p, {0});
  auto l = LogitsOf({0.5, 0.25, 0.125, 0.125});
  const auto t = s.Sample(l.data(), 4);
  EXPECT_EQ(t.token_id, 1);  // the penalty moved the choice ...
  EXPECT_NEAR(t.logprob, std::log(0.25), 1e-6);  // ... not the reported distribution
  ASSERT_EQ(t.top_logprobs.size(), 3u);
  EXPECT_EQ(t.top_logprobs[0].first, 0);
  EXPECT_NEAR(t.top_logprobs[0].second, std::log(0.5), 1e-6);
  EXPECT_EQ(t.top_logprobs[1].first, 1);
  EXPECT_EQ(t.top_logprobs[2].first, 2);
}

void ExpectInvalid(const Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
}

TEST(SamplingParams, RejectionsNameTheField) {
  auto with = [](auto set) {
    SamplingParams p;
    set(p);
    return ValidateSamplingParams(p);
  };
  EXPECT_TRUE(with([](SamplingParams&) {}).ok());
  ExpectInvalid(with([](SamplingParams& p) { p.temperature = -0.5f; }), "temperature");
  ExpectInvalid(with([](SamplingParams& p) { p.temperature = NAN; }), "temperature");
  ExpectInvalid(with([](SamplingParams& p) { p.top_k = -1; }), "top_k");
  ExpectInvalid(with([](SamplingParams& p) { p.top_p = 0; }), "top_p");
  ExpectInvalid(with([](SamplingParams& p) { p.top_p = 1.01f; }), "top_p");
  ExpectInvalid(with([](SamplingParams& p) { p.min_p = -0.1f; }), "min_p");
  ExpectInvalid(with([](SamplingParams& p) { p.repetition_penalty = 0; }), "repetition_penalty");
  ExpectInvalid(with([](SamplingParams& p) { p.presence_penalty = 2.5f; }), "presence_penalty");
  ExpectInvalid(with([](SamplingParams& p) { p.frequency_penalty = INFINITY; }), "frequency_penalty");
  ExpectInvalid(with([](SamplingParams& p) { p.top_logprobs = 21; }), "top_logprobs");
}

TEST(StoppingParams, RejectionsNameTheFieldAndLimit) {
  auto with = [](auto set) {
    StoppingParams p;
    set(p);
    return ValidateStoppingParams(p, 100, 1000);
  };
  EXPECT_TRUE(with([](StoppingParams&) {}).ok());
  ExpectInvalid(with([](StoppingParams& p) { p.max_new_tokens = 0; }), "max_new_tokens");
  ExpectInvalid(with([](StoppingParams& p) { p.max_new_tokens = 1001; }), "[1, 1000]");
  ExpectInvalid(with([](StoppingParams& p) { p.stop.assign(17, "x"); }), "at most 16");
  ExpectInvalid(with([](StoppingParams& p) { p.stop = {"ok", std::string(257, 'a')}; }), "stop[1]");
  ExpectInvalid(with([](StoppingParams& p) { p.stop = {""}; }), "stop[0] is empty");
  ExpectInvalid(with([](StoppingParams& p) { p.stop_token_ids = {5, 100}; }), "stop_token_ids[1]");
  ExpectInvalid(with([](StoppingParams& p) { p.stop_token_ids = {-1}; }), "stop_token_ids[0]");
}

TEST(StopStringMatcher, StopsBeforeTheStopStringAcrossPushes) {
  StopStringMatcher m({"END", "\n\n"});
  bool stopped = false;
  EXPECT_EQ(m.Push("Hello E", &stopped), "Hello ");  // "E" may start "END"
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.Push("x", &stopped), "Ex");  // it did not
  EXPECT_EQ(m.Push(" and E", &stopped), " and ");
  EXPECT_EQ(m.Push("N", &stopped), "");
  EXPECT_EQ(m.Push("D tail", &stopped), "");
  EXPECT_TRUE(stopped);
}

TEST(StopStringMatcher, EarliestStopWinsAndFlushReturnsHeldText) {
  StopStringMatcher m({"cd", "b"});
  bool stopped = false;
  EXPECT_EQ(m.Push("a b cd", &stopped), "a ");
  EXPECT_TRUE(stopped);

  StopStringMatcher held({"xyz"});
  EXPECT_EQ(held.Push("abcxy", &stopped), "abc");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(held.Flush(), "xy");

  StopStringMatcher none({});
  EXPECT_EQ(none.Push("anything", &stopped), "anything");
}

TEST(StopStringMatcher, MultibyteStopString) {
  StopStringMatcher m({"日本"});
  bool stopped = false;
  EXPECT_EQ(m.Push("abc日", &stopped), "abc");
  EXPECT_EQ(m.Push("本語", &stopped), "");
  EXPECT_TRUE(stopped);
}

}  // namespace
}  // namespace bpt
