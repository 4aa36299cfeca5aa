// Writes model directories in the Hugging Face layout (config.json, safetensors, optionally a
// tokenizer's files) with deterministic random weights: the test fixtures, the demo model and the
// benchmark models. No model is ever downloaded.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "safetensors.h"
#include "status.h"

namespace bpt {

struct RandomModelSpec {
  nlohmann::json config;        // written as config.json
  DType dtype = DType::kBF16;
  uint64_t seed = 1;
  int num_shards = 1;           // > 1: model-0000K-of-0000N.safetensors plus the index
  // A SentencePiece model or a Hugging Face tokenizer directory, copied in when set
  // (ReadTokenizerFiles).
  std::string tokenizer;
  // config.json made to agree with the tokenizer first (FitConfigToTokenizer); tests that want
  // a mismatch leave it off.
  bool fit_config_to_tokenizer = false;
};

Status WriteRandomModel(const std::string& dir, const RandomModelSpec& spec);

// Shapes of public models, for benchmarks and the demo.
nlohmann::json TinyLlamaConfig();              // TinyLlama-1.1B: 22 layers, hidden 2048, GQA 32/4
// SmolLM2-135M (30 layers, hidden 576, GQA 9/3, head_dim 64, tied head) with the Llama 2 vocabulary
// (32000, not its own 49152), so that the Llama 2 tokenizer.model fits it and its GGUF conversion
// for llama.cpp has a tokenizer; positions for a 16K prompt and its decode (32768).
nlohmann::json SmolLM2Config();
// The shape a tool's --preset names: demo (DemoModelConfig(1000)), tinyllama or smollm2-135m.
nlohmann::json PresetConfig(const std::string& preset);
// Small enough to answer at once on a CPU. Untied: a random tied head repeats its input token.
nlohmann::json DemoModelConfig(int vocab_size);
// A Llama config small enough for fp64 reference checks (tests and fuzzers); callers override fields.
nlohmann::json SmallConfig();

}  // namespace bpt
