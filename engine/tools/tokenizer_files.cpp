#include "tokenizer_files.h"

#include <filesystem>
#include <unordered_map>

#include "json_fields.h"
#include "model_config.h"
#include "sentencepiece_tokenizer.h"

namespace bpt {
namespace {

using nlohmann::json;

constexpr size_t kMaxTokenizerJsonBytes = size_t{1} << 28;    // the largest published ones are tens of MB
constexpr size_t kMaxTokenizerConfigBytes = size_t{1} << 24;  // inline chat templates run to 100 KB
constexpr IntRange kIdRange{0, model_limits::kMaxVocabSize - 1};

// tokenizer.json's tokens by content: its model's vocabulary, then the added tokens.
struct TokenTable {
  std::unordered_map<std::string, int64_t> ids;
  int64_t size = 0;  // one past the largest id
};

void AddToken(const std::string& content, int64_t id, TokenTable* table) {
  table->ids[content] = id;
  table->size = std::max(table->size, id + 1);
}

// The model's vocab: {token: id} for BPE, WordPiece and WordLevel; [[piece, score], ...] for
// Unigram, whose ids are the positions.
Status ReadModelVocab(const json& tokenizer, const std::string& path, TokenTable* table) {
  const auto model = tokenizer.find("model");
  if (model == tokenizer.end() || !model->is_object()) return InvalidArgument(path + ": 'model' must be an object");
  const auto vocab = model->find("vocab");
  if (vocab != model->end() && vocab->is_object()) {
    for (const auto& [token, id] : vocab->items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < kIdRange.min || id.get<int64_t>() > kIdRange.max)
        return InvalidArgument(path + ": 'model.vocab' gives '" + token + "' no id in [0, " +
                               std::to_string(kIdRange.max) + "]");
      AddToken(token, id.get<int64_t>(), table);
    }
    return OkStatus();
  }
  if (vocab != model->end() && vocab->is_array()) {
    if (static_cast<int64_t>(vocab->size()) > kIdRange.max + 1)
      return InvalidArgument(path + ": 'model.vocab' has more than " + std::to_string(kIdRange.max + 1) + " pieces");
    for (size_t i = 0; i < vocab->size(); ++i) {
      const json& entry = (*vocab)[i];
      if (!entry.is_array() || entry.empty() || !entry[0].is_string())
        return InvalidArgument(path + ": 'model.vocab[" + std::to_string(i) + "]' must be [piece, score]");
      AddToken(entry[0].get<std::string>(), static_cast<int64_t>(i), table);
    }
    return OkStatus();
  }
  return InvalidArgument(path + ": 'model.vocab' must be an object of ids or a list of [piece, score]");
}

StatusOr<TokenTable> ReadTokenTable(const json& tokenizer, const std::string& path) {
  TokenTable table;
  BPT_RETURN_IF_ERROR(ReadModelVocab(tokenizer, path, &table));
  const auto added = tokenizer.find("added_tokens");
  if (added == tokenizer.end() || added->is_null()) return table;
  if (!added->is_array()) return InvalidArgument(path + ": 'added_tokens' must be a list");
  for (size_t i = 0; i < added->size(); ++i) {
    BPT_ASSIGN_OR_RETURN(JsonFields token, JsonFields::Of((*added)[i], path + ": added_tokens[" + std::to_string(i) + "]"));
    BPT_ASSIGN_OR_RETURN(const int64_t id, token.Int("id", kIdRange));
    BPT_ASSIGN_OR_RETURN(std::string content, token.String("content"));
    AddToken(content, id, &table);
  }
  return table;
}

// The special token a TemplateProcessing post-processor (alone or in a Sequence) puts before a
// single sequence, as Llama 3's puts <|begin_of_text|>; empty when there is none.
std::string LeadingSpecialToken(const json& tokenizer) {
  const auto processor = tokenizer.find("post_processor");
  if (processor == tokenizer.end() || !processor->is_object()) return "";
  std::vector<const json*> candidates = {&*processor};
  const auto processors = processor->find("processors");
  if (processors != processor->end() && processors->is_array())
    for (const json& p : *processors) candidates.push_back(&p);
  for (const json* p : candidates) {
    if (!p->is_object() || p->value("type", json()) != "TemplateProcessing") continue;
    const auto single = p->find("single");
    if (single == p->end() || !single->is_array() || single->empty() || !(*single)[0].is_object()) return "";
    const auto special = (*single)[0].find("SpecialToken");
    if (special == (*single)[0].end() || !special->is_object()) return "";
    const auto id = special->find("id");
    return id != special->end() && id->is_string() ? id->get<std::string>() : "";
  }
  return "";
}

// tokenizer_config.json's bos_token or eos_token: a string, an AddedToken object ({"content":
// ...}), or null/absent for none.
StatusOr<std::optional<int64_t>> ConfiguredToken(const json& config, const JsonFields& fields, const char* key,
                                                 const TokenTable& table) {
  const auto value = config.find(key);
  std::optional<std::string> content;
  if (value != config.end() && value->is_object()) {
    BPT_ASSIGN_OR_RETURN(JsonFields object, fields.Object(key));
    BPT_ASSIGN_OR_RETURN(content, object.String("content"));
  } else {
    BPT_ASSIGN_OR_RETURN(content, fields.OptionalString(key, Null::kAbsent));
  }
  if (!content.has_value()) return std::optional<int64_t>();
  const auto it = table.ids.find(*content);
  if (it == table.ids.end())
    return InvalidArgument(fields.where() + ": '" + fields.Name(key) + "' '" + *content +
                           "' is not a token of tokenizer.json");
  return std::optional<int64_t>(it->second);
}

StatusOr<TokenizerFiles> ReadTokenizerJson(const std::string& dir, TokenizerFiles files) {
  const std::string path = dir + "/tokenizer.json";
  BPT_ASSIGN_OR_RETURN(json tokenizer, ReadJsonFile(path, kMaxTokenizerJsonBytes));
  BPT_ASSIGN_OR_RETURN(TokenTable table, ReadTokenTable(tokenizer, path));
  files.vocab_size = table.size;
  const std::string config_path = dir + "/tokenizer_config.json";
  StatusOr<json> config = ReadJsonFile(config_path, kMaxTokenizerConfigBytes);
  if (config.status().code() == StatusCode::kNotFound) {
    const std::string bos = LeadingSpecialToken(tokenizer);
    const auto it = table.ids.find(bos);
    if (!bos.empty() && it != table.ids.end()) files.bos_token_id = it->second;
    return files;
  }
  if (!config.ok()) return config.status();
  BPT_ASSIGN_OR_RETURN(JsonFields fields, JsonFields::Of(*config, config_path));
  BPT_ASSIGN_OR_RETURN(files.bos_token_id, ConfiguredToken(*config, fields, "bos_token", table));
  BPT_ASSIGN_OR_RETURN(files.eos_token_id, ConfiguredToken(*config, fields, "eos_token", table));
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
