// Rotary position embedding frequencies for every rope_scaling type the engine supports.
// Angles are computed in double so that positions in the millions keep full precision.
#pragma once

#include <cstdint>
#include <vector>

#include "engine_options.h"
#include "model_config.h"

namespace bpt {

class Rope {
 public:
  explicit Rope(const ModelConfig& config, RopePositionGap gap = {});

  int head_dim() const { return head_dim_; }
  // Applied to cos and sin alike (YaRN's attention factor; 1 otherwise).
  double attention_factor() const { return attention_factor_; }
  const std::vector<double>& inv_freq() const { return inv_freq_; }  // [head_dim / 2]

  // cos_out, sin_out: [positions.size(), head_dim / 2]
  void Fill(const int64_t* positions, int64_t count, float* cos_out, float* sin_out) const;

 private:
  int head_dim_;
  RopePositionGap gap_;
  double attention_factor_ = 1.0;
  std::vector<double> inv_freq_;
};

// Rotates x in place, HF "rotate_half" layout: element i pairs with i + head_dim / 2.
// x: [num_tokens, num_heads, head_dim]; cos, sin: [num_tokens, head_dim / 2]
void ApplyRope(float* x, int64_t num_tokens, int num_heads, int head_dim, const float* cos,
               const float* sin);

}  // namespace bpt
