// The tokenizer files bptserve-make-model copies into a model directory, and what config.json
// must say to agree with them: a random model is only useful with a real tokenizer when its
// vocabulary holds every id the tokenizer produces and its BOS and EOS are the tokenizer's.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "status.h"

namespace bpt {

// The files of a Hugging Face tokenizer directory that are copied when present.
inline constexpr const char* kTokenizerFileNames[] = {"tokenizer.json",          "tokenizer_config.json",
                                                      "chat_template.jinja",     "special_tokens_map.json",
                                                      "tokenizer.model",         "generation_config.json"};

struct TokenizerFiles {
  std::vector<std::pair<std::string, std::string>> files;  // source path, name in the model directory
  int64_t vocab_size = 0;                                  // ids the tokenizer uses are below it
  std::optional<int64_t> bos_token_id;                     // none: the tokenizer has no BOS
  std::optional<int64_t> eos_token_id;
};

// `path`: a SentencePiece model (copied as tokenizer.model), or a Hugging Face tokenizer
// directory (kTokenizerFileNames). The ids are those the engine's tokenizer gives (tokenizer.json
// first, as HF's fast tokenizers prefer it): its vocabulary size, BOS as the special token the
// post-processor puts first (else tokenizer_config.json's bos_token), EOS as its eos_token.
// Otherwise they are the SentencePiece model's own. Errors name the file and key.
StatusOr<TokenizerFiles> ReadTokenizerFiles(const std::string& path);

// config.json made to agree: vocab_size raised to cover the tokenizer's ids (a larger one, as
// models pad it, stays), bos_token_id and eos_token_id the tokenizer's, removed when it has none.
void FitConfigToTokenizer(const TokenizerFiles& tokenizer, nlohmann::json* config);

}  // namespace bpt
