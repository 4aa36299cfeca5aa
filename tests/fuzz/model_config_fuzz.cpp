// Arbitrary bytes as config.json. A config the parser accepts must satisfy every invariant the
// engine relies on; the RoPE tables it implies are built too, since they are the first thing
// computed from the numbers.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "model_config.h"
#include "rope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = bpt::ParseModelConfig(std::string(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
  if (!config.ok()) return 0;
  const bpt::ModelConfig& c = *config;
  using namespace bpt::model_limits;
  const bool sane = c.vocab_size > 0 && c.vocab_size <= kMaxVocabSize && c.hidden_size > 0 &&
                    c.hidden_size <= kMaxHiddenSize && c.intermediate_size > 0 &&
                    c.intermediate_size <= kMaxIntermediateSize && c.num_layers > 0 && c.num_layers <= kMaxLayers &&
                    c.num_heads > 0 && c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0 && c.head_dim > 0 &&
                    c.head_dim % 2 == 0 && c.head_dim <= kMaxHeadDim &&
                    int64_t{c.num_heads} * c.head_dim <= kMaxAttentionDim && c.max_position_embeddings > 0 &&
                    c.max_position_embeddings <= kMaxPositions && c.sliding_window >= 0 && c.rms_norm_eps > 0 &&
                    c.rope_theta > 1;
  if (!sane) std::abort();
  for (int id : c.bos_token_ids)
    if (id < 0 || id >= c.vocab_size) std::abort();
  for (int id : c.eos_token_ids)
    if (id < 0 || id >= c.vocab_size) std::abort();
  const bpt::Rope rope(c);
  if (static_cast<int>(rope.inv_freq().size()) != c.head_dim / 2) std::abort();
  return 0;
}
