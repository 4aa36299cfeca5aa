// The server's flags and their effective values.
#pragma once

#include <cstdint>
#include <string>

#include "engine_options.h"
#include "status.h"

namespace bpt::server {

struct ServerOptions {
  // The engine's settings, flags bound straight to the tree (engine.model_dir defaults to the
  // demo model beside the binary).
  EngineOptions engine;
  std::string host = "0.0.0.0";
  int port = 50051;                // 0: any free port (tests)
  int metrics_port = 9400;         // 0: any free port; -1: no metrics endpoint
  int http_port = 8000;            // the OpenAI-compatible HTTP API; 0: any free port; -1: off
  std::string served_model_name;   // the API's model id; empty: the model directory's name
  int max_message_mb = 256;
  int64_t max_prompt_tokens = 0;   // 0: the model's context limit
  int tokenizer_threads = 2;       // threads that tokenize text prompts, off the engine's thread
  std::string tls_cert, tls_key, tls_client_ca;
  std::string api_key_file;
  bool reflection_without_key = false;  // with API keys on: serve reflection to callers without one
  // With API keys on: each request's cache keys are rooted in its API key (a hash of it), so
  // tenants never match, or time, each other's cached documents (pool and tiers).
  bool kv_cache_salt_per_api_key = false;
  double drain_seconds = 30;

  std::string Describe() const;
  // served_model_name, or the model directory's last path component.
  std::string ModelName() const;  // one line per setting, printed at start
};

// Parses argv; on --help or a bad flag, *exit_code is set and the caller exits with it.
StatusOr<ServerOptions> ParseServerOptions(int argc, char** argv, int* exit_code);
std::string DefaultModelDir();

}  // namespace bpt::server
