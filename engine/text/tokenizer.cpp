#include "tokenizer.h"

#include <sys/stat.h>

#include "hf_tokenizer.h"
#include "sentencepiece_tokenizer.h"

namespace bpt {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

Status TooManyIds(size_t max_ids) {
  return OutOfRange("the text has more than " + std::to_string(max_ids) + " tokens");
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_dir, const TokenizerConfig& config) {
  const std::string json_path = model_dir + "/tokenizer.json";
  if (Exists(json_path)) {
    BPT_ASSIGN_OR_RETURN(std::unique_ptr<HfTokenizer> hf, HfTokenizer::Load(json_path, config));
    return std::unique_ptr<Tokenizer>(std::move(hf));
  }
  const std::string model_path = model_dir + "/tokenizer.model";
  if (Exists(model_path)) {
    BPT_ASSIGN_OR_RETURN(std::unique_ptr<SentencePieceTokenizer> spm, SentencePieceTokenizer::Load(model_path, config));
    return std::unique_ptr<Tokenizer>(std::move(spm));
  }
  return std::unique_ptr<Tokenizer>();
}

}  // namespace bpt
