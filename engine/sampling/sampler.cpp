#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace bpt {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

Sampler::Sampler(const SamplingParams& params, const std::vector<int32_t>& prompt_ids)
    : params_(params), rng_state_(params.seed ? *params.seed : std::random_device{}()) {
  if (params_.repetition_penalty != 1.0f) {
    prompt_tokens_ = prompt_ids;
    std::sort(prompt_tokens_.begin(), prompt_tokens_.end());
    prompt_tokens_.erase(std::unique(prompt_tokens_.begin(), prompt_tokens_.end()), prompt_tokens_.end());
  }
}

double Sampler::NextUniform() { return static_cast<double>(SplitMix64(rng_state_) >> 11) * 0x1.0p-53; }

void Sampler::Accept(int32_t token_id) { ++output_counts_[token_id]; }

SamplingRow Sampler::NextRow() {
  const double uniform = params_.temperature == 0.0f ? 0.0 : NextUniform();
  return {&params_, uniform, &prompt_tokens_, &output_counts_};
}

SampledToken Sampler::Sample(float* logits, int vocab_size) {
  SampledToken result{};
  // Log-probabilities of the raw distribution, for reporting.
  const float raw_max = *std::max_element(logits, logits + vocab_size);
  double raw_sum = 0;
  for (int i = 0; i < vocab_size; ++i) raw_sum += std::exp(static_cast<double>(logits[i] - raw_max));
  const float log_z = raw_max + static_cast<float>(std::log(raw_sum));
  log_probs_.resize(vocab_size);
  for (int i = 0; i < vocab_size; ++i) log_probs_[i] = logits[i] - log_z;

  // Penalties.
  if (params_.repetition_penalty != 1.0f) {
    auto penalize = [&](int32_t id) {
      float& l = logits[id];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    };
    for (int32_t id : prompt_tokens_) penalize(id);
    for (const auto& [id, count] : output_counts_)
      if (!std::binary_search(prompt_tokens_.begin(), prompt_tokens_.end(), id)) penalize(id);
  }
  for (const auto& [id, count] : output_counts_)
    logits[id] -= params_.frequency_penalty * count + params_.presence_penalty;

  int32_t chosen;
  if (params_.temperature == 0.0f) {
    chosen = static_cast<int32_t>(std::max_element(logits, logits + vocab_size) - logits);
  } else {
    // Probabilities at the temperature, most likely first.
    const float max_logit = *std::max_element(logits, logits + vocab_size);
    candidates_.resize(vocab_size);
    for (int i = 0; i < vocab_size; ++i)
      candidates_[i] = {std::exp((logits[i] - max_logit) / params_.temperature), i};
    auto by_prob = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    size_t keep = candidates_.size();
    if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
      keep = params_.top_k;
      std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_prob);
    } else if (params_.top_p < 1.0f) {
      std::sort(candidates_.begin(), candidates_.end(), by_prob);
    } else {  // min-p needs only the most likely first; the draw needs no order at all
      std::swap(candidates_[0], *std::min_element(candidates_.begin(), candidates_.end(), by_prob));
    }
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += candidates_[i].first;
    if (params_.top_p < 1.0f) {
      double cumulative = 0;
      size_t i = 0;
      while (i < keep) {
        cumulative += candidates_[i].first / total;
        ++i;
        if (cumulative >= params_.top_p) break;
      }
      keep = i;
    }
    if (params_.min_p > 0.0f) {  // candidates_[0] is the most likely; the rest may be unsorted
      const float threshold = params_.min_p * candidates_[0].first;
      keep = std::partition(candidates_.begin() + 1, candidates_.begin() + keep,
                            [&](const auto& c) { return c.first >= threshold; }) -
             candidates_.begin();
    }
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += candidates_[i].first;
    const double target = NextUniform() * total;
    double cumulative = 0;
    chosen = candidates_[keep - 1].second;
    for (size_t i = 0; i < keep; ++i) {
      cumulative += candidates_[i].first;
      if (cumulative > target) {
        chosen = candidates_[i].second;
        break;
      }
    }
  }

  result.token_id = chosen;
  result.logprob = log_probs_[chosen];
  if (params_.top_logprobs > 0) {
    order_.resize(vocab_size);
    for (int i = 0; i < vocab_size; ++i) order_[i] = i;
    const int k = std::min(params_.top_logprobs, vocab_size);
    std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), [&](int32_t a, int32_t b) {
      return log_probs_[a] > log_probs_[b] || (log_probs_[a] == log_probs_[b] && a < b);
    });
    for (int i = 0; i < k; ++i) result.top_logprobs.emplace_back(order_[i], log_probs_[order_[i]]);
  }
  return result;
}

}  // namespace bpt
