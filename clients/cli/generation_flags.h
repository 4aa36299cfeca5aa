// The sampling and stopping flags of the subcommands that generate (generate, chat): declared
// once, and only those given on the command line are set in the request, so the rest take the
// server's defaults (the model's generation_config.json).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "bptserve/v1/bptserve.pb.h"

namespace bpt::cli {

class GenerationFlags {
 public:
  // Adds the flags to `command`; they bind to this object, which must outlive the parse.
  explicit GenerationFlags(CLI::App* command);
  GenerationFlags(const GenerationFlags&) = delete;
  GenerationFlags& operator=(const GenerationFlags&) = delete;

  // The request's sampling, stopping and top_logprobs from the flags given.
  void ApplyTo(bptserve::v1::GenerateRequest* request) const;

 private:
  float temperature_ = 1, top_p_ = 1, min_p_ = 0, repetition_ = 1, presence_ = 0, frequency_ = 0;
  int top_k_ = 0, max_new_tokens_ = 256, top_logprobs_ = 0;
  uint64_t seed_ = 0;
  bool ignore_eos_ = false;
  std::vector<std::string> stop_;
  std::vector<int32_t> stop_token_ids_;
  CLI::Option *temperature_flag_, *top_k_flag_, *top_p_flag_, *min_p_flag_, *repetition_flag_, *presence_flag_,
      *frequency_flag_, *seed_flag_, *max_new_tokens_flag_;
};

}  // namespace bpt::cli
