// generation_config.json, the file transformers writes beside config.json for how the model
// should generate. Two things in it matter here:
// - eos_token_id (an id or a list) is what ends a turn: Llama 3 Instruct stops at <|eot_id|>
//   (128009), which config.json's eos_token_id (128001) does not name, so without it a chat model
//   would talk past the end of its answer.
// - temperature, top_k, top_p, min_p and repetition_penalty are the authors' sampling defaults,
//   which requests that leave a field unset take (vLLM's --generation-config auto).
#pragma once

#include <string>
#include <vector>

#include "sampling_params.h"
#include "status.h"

namespace bpt {

struct GenerationConfig {
  std::vector<int> eos_token_ids;  // in the file's order; empty without the key
  SamplingParams sampling;         // the file's fields over SamplingParams' own defaults
};

// No file: an empty GenerationConfig. A file that is not valid JSON, a field of the wrong type,
// an eos id outside [0, vocab_size) or a sampling value outside its range is an error naming
// the file and the key.
StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& model_dir, int vocab_size);

}  // namespace bpt
