// The model's weights read from safetensors, checked against the config and converted to fp32,
// with the projections that run on the same input fused (q|k|v, gate|up) so each becomes one
// GEMM. They are handed over one at a time, so a backend that keeps its own copy (bf16 on the
// GPU) never has more than one weight in host fp32 at once.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "engine/status.h"

namespace bpt {

struct HostMatrix {
  std::vector<float> data;  // row-major [rows, cols]
  int64_t rows = 0;
  int64_t cols = 0;
};

enum class WeightSlot {
  kEmbed,      // [vocab, hidden]
  kFinalNorm,  // [1, hidden]
  kLmHead,     // [vocab, hidden]; not sent when tied to the embedding
  kInputNorm,  // [1, hidden]
  kPostNorm,   // [1, hidden]
  kQkv,        // [q_dim + 2 * kv_dim, hidden]: q rows, then k, then v
  kQkvBias,    // [1, q_dim + 2 * kv_dim]; only with qkv biases
  kOProj,      // [hidden, q_dim]
  kOBias,      // [1, hidden]; only with an o_proj bias
  kGateUp,     // [2 * intermediate, hidden]: gate rows, then up rows
  kDown,       // [hidden, intermediate]
};

// layer: the decoder layer, or -1 for the model-level weights.
using WeightSink = std::function<Status(WeightSlot slot, int layer, HostMatrix&& weight)>;

// Reads every tensor the config needs, model-level weights first, then layer by layer, and
// hands each to sink as soon as it is complete. A missing tensor or a wrong shape is an error
// naming it.
Status StreamModelWeights(const std::string& model_dir, const ModelConfig& config, const WeightSink& sink);

}  // namespace bpt
