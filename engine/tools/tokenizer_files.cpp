#include "tokenizer_files.h"

#include <filesystem>

#include "sentencepiece_tokenizer.h"
#include "tokenizer.h"
#include "tokenizer_config.h"

namespace bpt {
namespace {

using nlohmann::json;

// Through the engine's own tokenizer, so the ids are the ones it will serve: tokenizer.json's
// vocabulary and added tokens, with tokenizer_config.json's bos_token and eos_token added as
// special tokens where the file lacks them (as transformers adds them).
StatusOr<TokenizerFiles> ReadTokenizerJson(const std::string& dir, TokenizerFiles files) {
  BPT_ASSIGN_OR_RETURN(const TokenizerConfig config, LoadTokenizerConfig(dir));
  BPT_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(dir, config));
  files.vocab_size = tokenizer->vocab_size();
  // BOS: what the engine puts before a prompt, else the token tokenizer_config.json names (an
  // added token, so it encodes alone).
  if (!tokenizer->prefix_ids().empty()) {
    files.bos_token_id = tokenizer->prefix_ids().front();
  } else if (config.bos_token.has_value()) {
    BPT_ASSIGN_OR_RETURN(const std::vector<int32_t> ids, tokenizer->Encode(*config.bos_token));
    if (ids.size() == 1) files.bos_token_id = ids[0];
  }
  if (tokenizer->eos_id().has_value()) files.eos_token_id = *tokenizer->eos_id();
  return files;
}

Status ReadSentencePiece(const std::string& model_path, TokenizerFiles* files) {
  BPT_ASSIGN_OR_RETURN(std::unique_ptr<SentencePieceTokenizer> tokenizer, SentencePieceTokenizer::Load(model_path));
  files->vocab_size = tokenizer->vocab_size();
  if (tokenizer->bos_id().has_value()) files->bos_token_id = *tokenizer->bos_id();
  if (tokenizer->eos_id().has_value()) files->eos_token_id = *tokenizer->eos_id();
  return OkStatus();
}

}  // namespace

StatusOr<TokenizerFiles> ReadTokenizerFiles(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  TokenizerFiles files;
  if (!fs::is_directory(path, ec)) {
    if (!fs::is_regular_file(path, ec)) return NotFound("no tokenizer at '" + path + "'");
    files.files.emplace_back(path, "tokenizer.model");
    BPT_RETURN_IF_ERROR(ReadSentencePiece(path, &files));
    return files;
  }
  for (const char* name : kTokenizerFileNames)
    if (fs::is_regular_file(fs::path(path) / name, ec)) files.files.emplace_back((fs::path(path) / name).string(), name);
  if (fs::is_regular_file(fs::path(path) / "tokenizer.json", ec)) return ReadTokenizerJson(path, std::move(files));
  if (fs::is_regular_file(fs::path(path) / "tokenizer.model", ec)) {
    BPT_RETURN_IF_ERROR(ReadSentencePiece(path + "/tokenizer.model", &files));
    return files;
  }
  return NotFound("'" + path + "' has neither tokenizer.json nor tokenizer.model");
}

void FitConfigToTokenizer(const TokenizerFiles& tokenizer, json* config) {
  // A vocab_size that is no integer is left for the config's own check to report.
  const auto vocab = config->find("vocab_size");
  if (vocab == config->end() || (vocab->is_number_integer() && vocab->get<int64_t>() < tokenizer.vocab_size))
    (*config)["vocab_size"] = tokenizer.vocab_size;
  for (const auto& [key, id] : {std::pair{"bos_token_id", tokenizer.bos_token_id},
                                std::pair{"eos_token_id", tokenizer.eos_token_id}}) {
    if (id.has_value()) (*config)[key] = *id;
    else config->erase(key);
  }
}

}  // namespace bpt
