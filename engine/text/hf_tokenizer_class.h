// What AutoTokenizer changes in a tokenizer.json for the class tokenizer_config.json names.
// transformers 5 loads the file as it is for PreTrainedTokenizerFast (Llama 3, Mistral Nemo,
// Qwen2 by its model type, ...), but a class with a pipeline of its own keeps only the file's
// vocabulary, merges, added tokens and post-processor. Of the families served, that changes the
// ids of LlamaTokenizer's (Llama 2, TinyLlama, Mistral 7B v0.1: SentencePiece-style BPE), whose
// hub files carry the 4.x converter's normalizer (Prepend + Replace) where the class has none.
#pragma once

#include <nlohmann/json.hpp>

#include "tokenizer_config.h"

namespace bpt::hf {

// Rewrites `root` (a parsed tokenizer.json) as transformers 5 rebuilds it for config's class.
// LlamaTokenizer is rebuilt only over a byte-fallback (SentencePiece-style) model: for a
// byte-level vocabulary under that name (DeepSeek-R1's Llama distills) transformers itself
// switches back to the file's pipeline for the hub's model ids.
void ApplyTokenizerClass(const TokenizerConfig& config, nlohmann::json& root);

}  // namespace bpt::hf
