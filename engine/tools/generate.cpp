// bptserve-generate: runs the engine on one prompt from the command line and streams the text.
//   bptserve-generate --model build/demo-model --prompt "Long documents" --max-new-tokens 32
//   bptserve-generate --model DIR --prompt-file book.txt --temperature 0.7 --seed 1
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "engine.h"
#include "engine_flags.h"

namespace {

class Printer : public bpt::GenerationObserver {
 public:
  explicit Printer(bool show_progress) : show_progress_(show_progress) {}
  bool OnPrefillProgress(int64_t done, int64_t total) override {
    if (show_progress_) std::cerr << "\rprefill " << done << "/" << total << (done == total ? "\n" : "") << std::flush;
    return true;
  }
  bool OnToken(const bpt::TokenOutput& token) override {
    std::cout << token.text << std::flush;
    return true;
  }

 private:
  bool show_progress_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generate from a prompt with the bptserve engine (CPU)"};
  bpt::EngineOptions options;
  bpt::GenerationRequest request;
  std::string prompt, prompt_file;
  std::vector<int32_t> token_ids;
  bool progress = false;
  app.add_option("--model", options.model_dir, "Model directory (Hugging Face layout)")->required();
  app.add_option("--prompt", prompt, "Prompt text");
  app.add_option("--prompt-file", prompt_file, "Read the prompt from a file");
  app.add_option("--token-ids", token_ids, "Prompt as token ids (token-ids mode)")->delimiter(',');
  app.add_option("--max-new-tokens", request.stopping.max_new_tokens, "Tokens to generate at most");
  // Sampling flags left out take the model's defaults (ModelInfo::default_sampling: its
  // generation_config.json's, unless --generation-config none), as the server's unset fields do.
  bpt::SamplingParams flags;
  uint64_t seed = 0;
  CLI::Option* temperature = app.add_option("--temperature", flags.temperature, "0 is greedy");
  CLI::Option* top_k = app.add_option("--top-k", flags.top_k);
  CLI::Option* top_p = app.add_option("--top-p", flags.top_p);
  CLI::Option* min_p = app.add_option("--min-p", flags.min_p);
  CLI::Option* repetition_penalty = app.add_option("--repetition-penalty", flags.repetition_penalty);
  CLI::Option* presence_penalty = app.add_option("--presence-penalty", flags.presence_penalty);
  CLI::Option* frequency_penalty = app.add_option("--frequency-penalty", flags.frequency_penalty);
  CLI::Option* seed_option = app.add_option("--seed", seed, "Same seed, same tokens");
  app.add_option("--generation-config", options.generation_config,
                 "auto: the model's generation_config.json sets the sampling defaults; none: bptserve's")
      ->check(CLI::IsMember({"auto", "none"}));
  app.add_option("--stop", request.stopping.stop, "Stop string (repeatable)");
  app.add_option("--stop-token-ids", request.stopping.stop_token_ids)->delimiter(',');
  app.add_flag("--ignore-eos", request.stopping.ignore_eos);
  app.add_option("--prefill-block", options.scheduler.prefill_block, "Tokens per prefill step");
  app.add_option("--kv-capacity", options.kv_cache.capacity_tokens, "KV cache capacity in tokens (0: context limit)");
  app.add_option("--threads", options.cpu.num_threads, "CPU threads (0: all)");
  bpt::AddStorageFlags(app, &options);
  app.add_flag("--progress", progress, "Show prefill progress on stderr");
  CLI11_PARSE(app, argc, argv);

  auto engine = bpt::Engine::Create(options);
  if (!engine.ok()) {
    std::cerr << engine.status().ToString() << "\n";
    return 1;
  }
  bpt::SamplingParams& sampling = request.sampling;
  sampling = (*engine)->model_info().default_sampling;
  if (temperature->count() > 0) sampling.temperature = flags.temperature;
  if (top_k->count() > 0) sampling.top_k = flags.top_k;
  if (top_p->count() > 0) sampling.top_p = flags.top_p;
  if (min_p->count() > 0) sampling.min_p = flags.min_p;
  if (repetition_penalty->count() > 0) sampling.repetition_penalty = flags.repetition_penalty;
  if (presence_penalty->count() > 0) sampling.presence_penalty = flags.presence_penalty;
  if (frequency_penalty->count() > 0) sampling.frequency_penalty = flags.frequency_penalty;
  if (seed_option->count() > 0) sampling.seed = seed;
  if (!prompt_file.empty()) {
    std::ifstream in(prompt_file, std::ios::binary);
    if (!in) {
      std::cerr << "cannot read '" << prompt_file << "'\n";
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    prompt = ss.str();
  }
  if (!token_ids.empty()) {
    request.prompt = token_ids;
  } else {
    auto ids = (*engine)->EncodePrompt(prompt);
    if (!ids.ok()) {
      std::cerr << ids.status().ToString() << "\n";
      return 1;
    }
    request.prompt = std::move(ids).value();
  }
  Printer printer(progress);
  auto result = (*engine)->Generate(request, &printer);
  if (!result.ok()) {
    std::cerr << result.status().ToString() << "\n";
    return 1;
  }
  std::cout << "\n";
  const auto& t = result->timings;
  std::cerr << "finish_reason=" << bpt::FinishReasonName(result->finish_reason)
            << " prompt_tokens=" << result->prompt_tokens << " completion_tokens=" << result->token_ids.size()
            << " prefill_s=" << t.prefill_s << " ttft_s=" << t.time_to_first_token_s << " decode_s=" << t.decode_s
            << "\n";
  if ((*engine)->model_info().token_ids_mode) {
    std::cout << "token_ids:";
    for (int32_t id : result->token_ids) std::cout << " " << id;
    std::cout << "\n";
  }
  return 0;
}
