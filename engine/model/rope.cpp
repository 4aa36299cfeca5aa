#include "rope.h"

#include <algorithm>
#include <cmath>

namespace bpt {
namespace {

// HF _compute_yarn_parameters' get_mscale.
double YarnMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double YarnCorrectionDim(double num_rotations, int dim, double base, double max_pos) {
  return (dim * std::log(max_pos / (num_rotations * 2 * M_PI))) / (2 * std::log(base));
}

}  // namespace

Rope::Rope(const ModelConfig& config, RopePositionGap gap) : head_dim_(config.head_dim), gap_(gap) {
  const int dim = head_dim_;
  const int half = dim / 2;
  const RopeScaling& s = config.rope_scaling;
  double base = config.rope_theta;
  const double max_pos = static_cast<double>(config.max_position_embeddings);
  const double original_max_pos = s.original_max_position_embeddings > 0
                                      ? static_cast<double>(s.original_max_position_embeddings)
                                      : max_pos;

  if (s.type == RopeScalingType::kDynamic) {
    // HF grows the base with the length of the current forward call, so its keys depend on how
    // the prompt was split into calls. Like vLLM, we fix the base at the longest supported
    // length (max_position_embeddings * factor): every position then has one rotation, which
    // blockwise prefill, decode and the prefix cache all need.
    const double max_len = max_pos * s.factor;
    base = base * std::pow(s.factor * max_len / max_pos - (s.factor - 1.0),
                           static_cast<double>(dim) / (dim - 2));
  }

  inv_freq_.resize(half);
  for (int i = 0; i < half; ++i) inv_freq_[i] = 1.0 / std::pow(base, (2.0 * i) / dim);

  switch (s.type) {
    case RopeScalingType::kNone:
    case RopeScalingType::kDynamic:
      break;
    case RopeScalingType::kLinear:
      for (double& f : inv_freq_) f /= s.factor;
      break;
    case RopeScalingType::kLlama3: {
      const double low_freq_wavelen = original_max_pos / s.low_freq_factor;
      const double high_freq_wavelen = original_max_pos / s.high_freq_factor;
      for (double& f : inv_freq_) {
        const double wavelen = 2 * M_PI / f;
        if (wavelen > low_freq_wavelen) {
          f = f / s.factor;
        } else if (wavelen >= high_freq_wavelen) {
          const double smooth = (original_max_pos / wavelen - s.low_freq_factor) /
                                (s.high_freq_factor - s.low_freq_factor);
          f = (1 - smooth) * f / s.factor + smooth * f;
        }
      }
      break;
    }
    case RopeScalingType::kYarn: {
      attention_factor_ = s.attention_factor;
      if (attention_factor_ == 0.0) {
        attention_factor_ = (s.mscale != 0.0 && s.mscale_all_dim != 0.0)
                                ? YarnMscale(s.factor, s.mscale) / YarnMscale(s.factor, s.mscale_all_dim)
                                : YarnMscale(s.factor, 1.0);
      }
      double low = YarnCorrectionDim(s.beta_fast, dim, base, original_max_pos);
      double high = YarnCorrectionDim(s.beta_slow, dim, base, original_max_pos);
      if (s.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim - 1));
      if (low == high) high += 0.001;
      for (int i = 0; i < half; ++i) {
        const double extrapolation = inv_freq_[i];
        const double interpolation = inv_freq_[i] / s.factor;
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extrapolation_weight = 1.0 - ramp;
        inv_freq_[i] = interpolation * (1 - extrapolation_weight) + extrapolation * extrapolation_weight;
      }
      break;
    }
  }
}

void Rope::Fill(const int64_t* positions, int64_t count, float* cos_out, float* sin_out) const {
  const int half = head_dim_ / 2;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t position = positions[t] >= gap_.start ? positions[t] + gap_.length : positions[t];
    const double p = static_cast<double>(position);
    for (int i = 0; i < half; ++i) {
      const double angle = p * inv_freq_[i];
      cos_out[t * half + i] = static_cast<float>(std::cos(angle) * attention_factor_);
      sin_out[t * half + i] = static_cast<float>(std::sin(angle) * attention_factor_);
    }
  }
}

void ApplyRope(float* x, int64_t num_tokens, int num_heads, int head_dim, const float* cos,
               const float* sin) {
  const int half = head_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int h = 0; h < num_heads; ++h) {
      float* v = x + (t * num_heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace bpt
