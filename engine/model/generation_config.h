// generation_config.json, the file transformers writes beside config.json for how the model
// should generate. Its eos_token_id list is what ends a turn: Llama 3 Instruct stops at
// <|eot_id|> (128009), which config.json's eos_token_id (128001) does not name, so without it
// a chat model would talk past the end of its answer.
#pragma once

#include <string>

#include "model_config.h"
#include "status.h"

namespace bpt {

// Adds generation_config.json's eos_token_id (an id or a list) to config->eos_token_ids, each id
// once, checked against the vocabulary. No file: nothing changes. A file that is not valid JSON,
// or an eos_token_id of the wrong type or out of range, is an error naming the file and key.
Status MergeGenerationConfig(const std::string& model_dir, ModelConfig* config);

}  // namespace bpt
