#include "tokenizer_config.h"

#include <dirent.h>

#include <algorithm>
#include <vector>

#include "bounded_file.h"
#include "json_fields.h"

namespace bpt {
namespace {

// Real tokenizer_config.json files carry the added-token table (a few hundred entries; under
// 1 MB for every family we serve); templates are a few KB.
constexpr size_t kMaxTokenizerConfigBytes = 16 << 20;
constexpr size_t kMaxTemplateBytes = 1 << 20;
constexpr size_t kMaxNamedTemplates = 64;
constexpr std::string_view kTemplateSuffix = ".jinja";

// bos_token and eos_token: a string, an AddedToken object ({"content": ..., "__type": ...}),
// or null (unset).
StatusOr<std::optional<std::string>> SpecialTokenText(const nlohmann::json& config, const JsonFields& f,
                                                      std::string_view key) {
  const auto it = config.find(key);
  if (it != config.end() && it->is_object()) {
    BPT_ASSIGN_OR_RETURN(JsonFields token, f.Object(key));
    BPT_ASSIGN_OR_RETURN(std::string content, token.String("content"));
    return std::optional<std::string>(std::move(content));
  }
  return f.OptionalString(key, Null::kAbsent);
}

// chat_template: a string, or a list of {"name": ..., "template": ...}.
Status ReadTemplates(const nlohmann::json& config, const std::string& path, std::map<std::string, std::string>& out) {
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return OkStatus();
  if (it->is_string()) {
    out["default"] = it->get<std::string>();
    return OkStatus();
  }
  if (!it->is_array())
    return InvalidArgument(path + ": chat_template must be a string or a list of {name, template}");
  if (it->size() > kMaxNamedTemplates)
    return InvalidArgument(path + ": chat_template lists more than " + std::to_string(kMaxNamedTemplates) + " templates");
  for (size_t i = 0; i < it->size(); ++i) {
    BPT_ASSIGN_OR_RETURN(JsonFields entry, JsonFields::Of((*it)[i], path + ": chat_template[" + std::to_string(i) + "]"));
    BPT_ASSIGN_OR_RETURN(std::string name, entry.String("name"));
    BPT_ASSIGN_OR_RETURN(std::string source, entry.String("template"));
    out[std::move(name)] = std::move(source);
  }
  return OkStatus();
}

// chat_template.jinja and additional_chat_templates/<name>.jinja, which transformers prefers.
StatusOr<std::map<std::string, std::string>> ReadTemplateFiles(const std::string& model_dir) {
  std::map<std::string, std::string> templates;
  StatusOr<std::string> main_template = ReadBoundedFile(model_dir + "/chat_template.jinja", kMaxTemplateBytes);
  if (main_template.ok()) templates["default"] = std::move(*main_template);
  else if (main_template.status().code() != StatusCode::kNotFound) return main_template.status();

  const std::string dir = model_dir + "/additional_chat_templates";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return templates;
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string file = e->d_name;
    if (file.size() > kTemplateSuffix.size() && file.ends_with(kTemplateSuffix)) names.push_back(file);
  }
  ::closedir(d);
  if (names.size() > kMaxNamedTemplates)
    return InvalidArgument(dir + " holds more than " + std::to_string(kMaxNamedTemplates) + " templates");
  std::sort(names.begin(), names.end());
  for (const std::string& file : names) {
    BPT_ASSIGN_OR_RETURN(std::string source, ReadBoundedFile(dir + "/" + file, kMaxTemplateBytes));
    templates[file.substr(0, file.size() - kTemplateSuffix.size())] = std::move(source);
  }
  return templates;
}

}  // namespace

const std::string* TokenizerConfig::ChatTemplateFor(bool with_tools) const {
  if (with_tools) {
    const auto tool_use = chat_templates.find("tool_use");
    if (tool_use != chat_templates.end()) return &tool_use->second;
  }
  const auto default_template = chat_templates.find("default");
  return default_template == chat_templates.end() ? nullptr : &default_template->second;
}

StatusOr<TokenizerConfig> LoadTokenizerConfig(const std::string& model_dir) {
  TokenizerConfig config;
  const std::string path = model_dir + "/tokenizer_config.json";
  StatusOr<nlohmann::json> j = ReadJsonFile(path, kMaxTokenizerConfigBytes);
  if (j.ok()) {
    BPT_ASSIGN_OR_RETURN(JsonFields f, JsonFields::Of(*j, path));
    for (const char* name : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
      BPT_ASSIGN_OR_RETURN(std::optional<std::string> text, SpecialTokenText(*j, f, name));
      if (text.has_value()) config.special_tokens[name] = std::move(*text);
    }
    const auto named = [&](const char* name) {
      const auto it = config.special_tokens.find(name);
      return it == config.special_tokens.end() ? std::optional<std::string>() : std::optional<std::string>(it->second);
    };
    config.bos_token = named("bos_token");
    config.eos_token = named("eos_token");
    BPT_ASSIGN_OR_RETURN(config.tokenizer_class, f.OptionalString("tokenizer_class", Null::kAbsent));
    BPT_ASSIGN_OR_RETURN(config.legacy, f.OptionalBool("legacy", Null::kAbsent));
    BPT_ASSIGN_OR_RETURN(config.add_prefix_space, f.OptionalBool("add_prefix_space", Null::kAbsent));
    BPT_RETURN_IF_ERROR(ReadTemplates(*j, path, config.chat_templates));
  } else if (j.status().code() != StatusCode::kNotFound) {
    return j.status();
  }
  using Templates = std::map<std::string, std::string>;
  BPT_ASSIGN_OR_RETURN(Templates files, ReadTemplateFiles(model_dir));
  if (!files.empty()) config.chat_templates = std::move(files);
  return config;
}

}  // namespace bpt
