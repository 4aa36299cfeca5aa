// The model's weights on the host in fp32, checked against the config, with the projections
// that run on the same input fused (q|k|v, gate|up) so each becomes one GEMM.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "engine/status.h"

namespace bpt {

struct HostMatrix {
  std::vector<float> data;  // row-major [rows, cols]
  int64_t rows = 0;
  int64_t cols = 0;
  bool empty() const { return data.empty(); }
};

struct HostLayerWeights {
  HostMatrix input_norm;  // [1, hidden]
  HostMatrix qkv;         // [q_dim + 2 * kv_dim, hidden]
  HostMatrix qkv_bias;    // [1, q_dim + 2 * kv_dim], or empty
  HostMatrix o_proj;      // [hidden, q_dim]
  HostMatrix o_bias;      // [1, hidden], or empty
  HostMatrix post_norm;   // [1, hidden]
  HostMatrix gate_up;     // [2 * intermediate, hidden]: gate rows, then up rows
  HostMatrix down;        // [hidden, intermediate]
};

struct HostModelWeights {
  HostMatrix embed;       // [vocab, hidden]
  std::vector<HostLayerWeights> layers;
  HostMatrix final_norm;  // [1, hidden]
  HostMatrix lm_head;     // [vocab, hidden]; empty when tied to embed
};

// Reads every tensor the config needs; a missing tensor or a wrong shape is an error naming it.
StatusOr<HostModelWeights> LoadModelWeights(const std::string& model_dir, const ModelConfig& config);

}  // namespace bpt
