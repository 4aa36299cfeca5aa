// Chooses the next token from a row of logits: penalties, then temperature, top-k, top-p and
// min-p, then a draw from the request's own seeded generator (greedy at temperature 0).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sampling_params.h"

namespace bpt {

struct SampledToken {
  int32_t token_id;
  float logprob;  // of the model's distribution, before penalties and truncation (as vLLM reports)
  std::vector<std::pair<int32_t, float>> top_logprobs;  // most likely first
};

// What a backend needs to sample one row of logits as Sampler::Sample would there
// (Backend::Sample): the parameters, the draw, and the penalty state.
struct SamplingRow {
  const SamplingParams* params;
  double uniform;                                        // the draw in [0, 1); unused when greedy
  const std::vector<int32_t>* prompt_tokens;             // distinct, sorted; empty without a repetition penalty
  const std::unordered_map<int32_t, int>* output_counts;  // generated tokens and how often
};

class Sampler {
 public:
  // prompt_ids feed the repetition penalty; the caller has validated params.
  Sampler(const SamplingParams& params, const std::vector<int32_t>& prompt_ids);

  // logits: [vocab]; modified in place.
  SampledToken Sample(float* logits, int vocab_size);
  // The same choice made elsewhere: draws from this sampler's generator exactly as Sample
  // would, so a seed gives one sequence of draws wherever the sampling runs.
  SamplingRow NextRow();
  // Records a token the sequence has generated (for penalties).
  void Accept(int32_t token_id);

 private:
  double NextUniform();  // [0, 1)

  SamplingParams params_;
  uint64_t rng_state_;
  std::vector<int32_t> prompt_tokens_;               // distinct, sorted
  std::unordered_map<int32_t, int> output_counts_;
  std::vector<std::pair<float, int32_t>> candidates_;  // scratch: (probability, id)
  std::vector<float> log_probs_;                       // scratch: [vocab]
  std::vector<int32_t> order_;                         // scratch: [vocab], for top logprobs
};

}  // namespace bpt
