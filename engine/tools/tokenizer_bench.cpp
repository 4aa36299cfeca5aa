// tokenizer-bench: single-threaded encoding speed of a model directory's tokenizer, one JSON line.
//   tokenizer-bench --model DIR --text FILE [--repeat N] [--ids-out FILE]
// The text is encoded whole (add_special_tokens=False, no id limit) N times; seconds is the best
// run. --ids-out writes the ids as int32 in the machine's byte order, for
// engine/tools/tokenizer_peer_bench.py to compare with HF tokenizers'.
#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bounded_file.h"
#include "tokenizer.h"
#include "tokenizer_config.h"

int main(int argc, char** argv) {
  CLI::App app{"Single-threaded tokenizer encoding speed"};
  std::string model_dir, text_file, ids_out;
  int repeat = 3;
  app.add_option("--model", model_dir, "model directory (tokenizer.json or tokenizer.model)")->required();
  app.add_option("--text", text_file, "UTF-8 text to encode")->required();
  app.add_option("--repeat", repeat, "runs; the best is reported")->check(CLI::PositiveNumber);
  app.add_option("--ids-out", ids_out, "write the ids here (int32, native byte order)");
  CLI11_PARSE(app, argc, argv);

  auto read = bpt::ReadBoundedFile(text_file, SIZE_MAX);
  if (!read.ok()) {
    std::cerr << read.status().ToString() << "\n";
    return 1;
  }
  const std::string text = std::move(read).value();

  auto config = bpt::LoadTokenizerConfig(model_dir);
  if (!config.ok()) {
    std::cerr << config.status().ToString() << "\n";
    return 1;
  }
  auto tokenizer = bpt::Tokenizer::Load(model_dir, *config);
  if (!tokenizer.ok()) {
    std::cerr << tokenizer.status().ToString() << "\n";
    return 1;
  }
  if (*tokenizer == nullptr) {
    std::cerr << model_dir << " has neither tokenizer.json nor tokenizer.model\n";
    return 1;
  }

  double best = 0;
  std::vector<int32_t> ids;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto encoded = (*tokenizer)->Encode(text);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!encoded.ok()) {
      std::cerr << encoded.status().ToString() << "\n";
      return 1;
    }
    if (i == 0 || seconds < best) best = seconds;
    ids = std::move(encoded).value();
  }
  if (!ids_out.empty()) {
    std::ofstream out(ids_out, std::ios::binary);
    out.write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
    if (!out) {
      std::cerr << "cannot write " << ids_out << "\n";
      return 1;
    }
  }
  const nlohmann::json line = {{"bench", "tokenizer"},
                               {"model", model_dir},
                               {"bytes", text.size()},
                               {"tokens", ids.size()},
                               {"seconds", best},
                               {"mb_per_s", static_cast<double>(text.size()) / 1e6 / best}};
  std::cout << line.dump() << "\n";
  return 0;
}
