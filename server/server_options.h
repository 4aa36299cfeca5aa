// The server's flags and their effective values.
#pragma once

#include <cstdint>
#include <string>

#include "status.h"

namespace bpt::server {

struct ServerOptions {
  std::string model_dir;           // default: the demo model beside the binary
  std::string host = "0.0.0.0";
  int port = 50051;                // 0: any free port (tests)
  int metrics_port = 9400;         // 0: any free port; -1: no metrics endpoint
  std::string device = "auto";     // auto, cpu or cuda
  int max_message_mb = 256;
  int64_t max_prompt_tokens = 0;   // 0: the model's context limit
  int max_queue = 64;              // requests waiting for a place in the batch
  int max_running = 16;            // requests batched into one engine step
  int prefill_block = 256;
  int64_t kv_capacity_tokens = 0;  // 0: the engine's default
  double kv_memory_fraction = 0.90;  // of the memory left after weights and workspace
  int threads = 0;
  int tokenizer_threads = 2;       // threads that tokenize text prompts, off the engine's thread
  std::string tls_cert, tls_key, tls_client_ca;
  std::string api_key_file;
  bool reflection_without_key = false;  // with API keys on: serve reflection to callers without one
  double drain_seconds = 30;

  std::string Describe() const;  // one line per setting, printed at start
};

// Parses argv; on --help or a bad flag, *exit_code is set and the caller exits with it.
StatusOr<ServerOptions> ParseServerOptions(int argc, char** argv, int* exit_code);
std::string DefaultModelDir();

}  // namespace bpt::server
