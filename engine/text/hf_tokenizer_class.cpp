#include "hf_tokenizer_class.h"

namespace bpt::hf {
namespace {

using nlohmann::json;

bool IsByteFallbackBpe(const json& root) {
  const auto model = root.find("model");
  if (model == root.end() || !model->is_object()) return false;
  const auto type = model->find("type");
  const auto byte_fallback = model->find("byte_fallback");
  return type != model->end() && *type == "BPE" && byte_fallback != model->end() && *byte_fallback == true;
}

// transformers 5's LlamaTokenizer.__init__: no normalizer, Metaspace without splitting (its
// prepend_scheme from add_prefix_space and legacy, as _get_prepend_scheme picks it), and the
// decoder that undoes it.
void RebuildLlamaTokenizer(const TokenizerConfig& config, json& root) {
  const bool add_prefix_space = config.add_prefix_space.value_or(true);
  const char* prepend_scheme = !add_prefix_space ? "never" : config.legacy.value_or(false) ? "always" : "first";
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", prepend_scheme},
                           {"split", false}};
  json decoders = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                               {{"type", "ByteFallback"}},
                               {{"type", "Fuse"}}});
  if (add_prefix_space) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1u}, {"stop", 0u}});
  root["decoder"] = {{"type", "Sequence"}, {"decoders", std::move(decoders)}};
  json& model = root["model"];
  model["fuse_unk"] = true;
  model["dropout"] = nullptr;
}

}  // namespace

void ApplyTokenizerClass(const TokenizerConfig& config, json& root) {
  const std::string& name = config.tokenizer_class.value_or("");
  if ((name == "LlamaTokenizer" || name == "LlamaTokenizerFast") && IsByteFallbackBpe(root))
    RebuildLlamaTokenizer(config, root);
}

}  // namespace bpt::hf
