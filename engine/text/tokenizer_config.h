// What a model directory says about its prompts beside the tokenizer itself: tokenizer_config.json
// (special token strings, the class and its settings, chat templates) and the template files
// transformers >= 4.47 writes next to it (chat_template.jinja, additional_chat_templates/*.jinja),
// read with transformers' precedence: the .jinja files replace tokenizer_config.json's templates.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "status.h"

namespace bpt {

struct TokenizerConfig {
  // The tokens' text (tokenizer_config.json gives a string or an AddedToken object).
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  // Every special-token attribute transformers knows that the file sets (bos_token, eos_token,
  // unk_token, sep_token, pad_token, cls_token, mask_token): what a chat template sees.
  std::map<std::string, std::string> special_tokens;
  // The class AutoTokenizer builds ("LlamaTokenizer", "PreTrainedTokenizerFast", ...), and the
  // two settings with which LlamaTokenizer rebuilds its pipeline (see hf_tokenizer_class.h).
  std::optional<std::string> tokenizer_class;
  std::optional<bool> legacy;
  std::optional<bool> add_prefix_space;
  // Template name -> Jinja source. A single template is named "default", as transformers names it.
  std::map<std::string, std::string> chat_templates;

  // The template apply_chat_template would use: "tool_use" when tools are given and there is
  // one, else "default". nullptr when there is none (a single named template that is not
  // "default" is never picked implicitly, as in transformers).
  const std::string* ChatTemplateFor(bool with_tools) const;
};

// Reads the files of `model_dir`; a directory without them gives an empty config. Errors name the
// file and the key.
StatusOr<TokenizerConfig> LoadTokenizerConfig(const std::string& model_dir);

}  // namespace bpt
