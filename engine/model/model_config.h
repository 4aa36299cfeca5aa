// The model's architecture as read from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace bpt {

// The largest model a config.json may describe. Each bound is several times the largest
// published model's (Llama 3.1 405B: 126 layers, hidden 16384, 128 heads, vocab 128256), and
// keeps every size derived from them (q_dim, KV bytes per token, parameter counts) far inside
// int64 and the int fields below.
namespace model_limits {
inline constexpr int64_t kMaxVocabSize = 1 << 22;
inline constexpr int64_t kMaxHiddenSize = 1 << 16;
inline constexpr int64_t kMaxIntermediateSize = 1 << 18;
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxHeads = 1024;
inline constexpr int64_t kMaxHeadDim = 1024;
inline constexpr int64_t kMaxAttentionDim = 1 << 17;  // num_heads * head_dim
inline constexpr int64_t kMaxPositions = 1 << 27;     // max_position_embeddings, sliding_window
inline constexpr int64_t kMaxParameters = int64_t{1} << 40;
}  // namespace model_limits

enum class RopeScalingType { kNone, kLinear, kDynamic, kLlama3, kYarn };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and yarn; 0 means "use max_position_embeddings"
  int64_t original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double attention_factor = 0.0;  // 0: derived from factor (and mscale) as HF does
  double mscale = 0.0;
  double mscale_all_dim = 0.0;
  bool truncate = true;
};

struct ModelConfig {
  std::string architecture;  // LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  int64_t sliding_window = 0;  // 0: full causal attention
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2, or Llama with attention_bias
  bool o_bias = false;    // Llama with attention_bias
  std::vector<int> bos_token_ids;
  std::vector<int> eos_token_ids;

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
};

// Parses and validates config.json text; `source` names the file in messages. Every field is
// type- and range-checked (model_limits); that the weights match is checked when they are opened.
StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source);
StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

}  // namespace bpt
