// bptserve-make-model: writes a model directory with deterministic random weights, in the
// Hugging Face layout, for tests, the demo and benchmarks.
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "random_model.h"

int main(int argc, char** argv) {
  CLI::App app{"Write a Hugging Face-format model directory with random weights"};
  std::string out, preset = "demo", config_path, tokenizer, dtype = "bf16";
  uint64_t seed = 1;
  int shards = 1;
  app.add_option("--out", out, "Directory to write")->required();
  app.add_option("--preset", preset,
                 "Shape: demo, tinyllama or smollm2-135m (with a 32000 vocabulary, for the Llama 2 tokenizer.model); "
                 "ignored with --config")
      ->check(CLI::IsMember({"demo", "tinyllama", "smollm2-135m"}));
  app.add_option("--config", config_path, "A config.json to use instead of a preset");
  app.add_option("--tokenizer", tokenizer,
                 "A SentencePiece tokenizer.model, or a Hugging Face tokenizer directory (tokenizer.json, "
                 "tokenizer_config.json, chat_template.jinja, special_tokens_map.json, tokenizer.model, "
                 "generation_config.json: those present), to copy in; config.json's vocab_size is raised to "
                 "cover it and its bos_token_id and eos_token_id become the tokenizer's");
  app.add_option("--dtype", dtype, "Weight dtype")->check(CLI::IsMember({"f32", "f16", "bf16"}));
  app.add_option("--seed", seed, "Random seed");
  app.add_option("--shards", shards, "Number of safetensors shards")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  bpt::RandomModelSpec spec;
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    std::stringstream ss;
    ss << in.rdbuf();
    spec.config = nlohmann::json::parse(ss.str(), nullptr, false);
    if (!in || spec.config.is_discarded()) {
      std::cerr << "cannot read a JSON config from '" << config_path << "'\n";
      return 2;
    }
  } else {
    spec.config = bpt::PresetConfig(preset);
  }
  spec.dtype = dtype == "f32" ? bpt::DType::kF32 : dtype == "f16" ? bpt::DType::kF16 : bpt::DType::kBF16;
  spec.seed = seed;
  spec.num_shards = shards;
  spec.tokenizer = tokenizer;
  spec.fit_config_to_tokenizer = true;
  const bpt::Status status = bpt::WriteRandomModel(out, spec);
  if (!status.ok()) {
    std::cerr << status.ToString() << "\n";
    return 1;
  }
  std::cout << "wrote " << out << "\n";
  return 0;
}
