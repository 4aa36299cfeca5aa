// The model's weights read from safetensors, checked against the config and converted to fp32,
// with the projections that run on the same input fused (q|k|v, gate|up) so each becomes one
// GEMM. They are handed over one at a time, so a backend that keeps its own copy (bf16 on the
// GPU) never has more than one weight in host fp32 at once.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model_config.h"
#include "status.h"

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

class SafetensorsModel;

// The weights of a model directory, checked against its config when opened: every tensor the
// config needs is present with its expected shape (and the safetensors parser has checked that
// the file holds its bytes). Only the headers are read, so a config whose sizes the files do not
// back is refused before anything is allocated from those sizes.
class ModelWeights {
 public:
  static StatusOr<std::unique_ptr<ModelWeights>> Open(const std::string& model_dir, const ModelConfig& config);
  ~ModelWeights();

  // Converts each weight to fp32, model-level weights first, then layer by layer, and hands it
  // to sink as soon as it is complete.
  Status Stream(const WeightSink& sink) const;

 private:
  ModelWeights(const ModelConfig& config, std::unique_ptr<SafetensorsModel> tensors);

  ModelConfig config_;
  std::unique_ptr<SafetensorsModel> tensors_;
};

}  // namespace bpt
