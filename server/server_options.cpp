#include "server_options.h"

#include <limits.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <sstream>

#include "engine_flags.h"

namespace bpt::server {

std::string DefaultModelDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "demo-model";
  std::string exe(buf, n);
  return exe.substr(0, exe.rfind('/')) + "/../demo-model";
}

namespace {

// A redis:// URL without the password it may carry: redis://user:secret@host gives
// redis://user:***@host, and redis://secret@host (a password alone) redis://***@host.
std::string RedactedUrl(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t at = url.rfind('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  const size_t userinfo = scheme + 3;
  const size_t colon = url.find(':', userinfo);
  const size_t secret = colon != std::string::npos && colon < at ? colon + 1 : userinfo;
  return url.substr(0, secret) + "***" + url.substr(at);
}

// The tiers below the pool as set: where, how large, and the shared settings; secrets by path only.
std::string DescribeKvTiers(const KvTierOptions& t) {
  if (!t.enabled()) return "off";
  std::ostringstream s;
  const char* sep = "";
  if (t.host_gib > 0) {
    s << "host " << t.host_gib << " GiB";
    sep = ", ";
  }
  if (!t.disk_dir.empty()) {
    s << sep << "disk " << t.disk_dir << " (" << t.disk_gib << " GiB)";
    sep = ", ";
  }
  if (!t.remote.empty()) {
    s << sep << "remote " << RedactedUrl(t.remote) << " (timeout " << t.remote_timeout_ms << " ms"
      << (t.remote_password_file.empty() ? "" : ", password from " + t.remote_password_file);
    if (t.remote.rfind("rediss://", 0) == 0) {
      s << ", TLS: CA " << (t.remote_tls_ca_file.empty() ? "the system's" : t.remote_tls_ca_file)
        << (t.remote_tls_cert_file.empty() ? "" : ", client certificate " + t.remote_tls_cert_file)
        << (t.remote_tls_server_name.empty() ? "" : ", server name " + t.remote_tls_server_name);
    }
    s << ")";
  }
  s << "; chunks of " << t.chunk_tokens << " tokens";
  if (!t.key_file.empty()) s << ", HMAC key from " << t.key_file;
  return s.str();
}

void AddKvTierFlags(CLI::App& app, KvTierOptions* t) {
  app.add_option("--kv-host-gib", t->host_gib,
                 "KV tier in pinned host memory below a GPU's KV pool, in GiB (0: off; skipped on the CPU device, "
                 "whose pool is host memory already)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--kv-disk-dir", t->disk_dir,
                 "KV tier on local disk: a directory of KV chunks, kept across restarts (needs --kv-disk-gib)");
  app.add_option("--kv-disk-gib", t->disk_gib, "The disk tier's budget in GiB; least recently used chunks go first")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--kv-remote", t->remote,
                 "Shared KV tier in Redis, redis://HOST:PORT[/DB], or rediss:// for TLS (needs --kv-tier-key-file)");
  app.add_option("--kv-remote-password-file", t->remote_password_file,
                 "File holding the Redis AUTH password (kept off the command line)");
  app.add_option("--kv-remote-timeout-ms", t->remote_timeout_ms,
                 "Redis connect (with the TLS handshake) and command timeout in ms; past it the request recomputes")
      ->check(CLI::PositiveNumber);
  app.add_option("--kv-remote-tls-ca-file", t->remote_tls_ca_file,
                 "With rediss://: PEM CA bundle the Redis server's certificate must chain to (default: the system's CAs)");
  app.add_option("--kv-remote-tls-cert-file", t->remote_tls_cert_file,
                 "With rediss://: client certificate (PEM) for a Redis with tls-auth-clients; needs --kv-remote-tls-key-file");
  app.add_option("--kv-remote-tls-key-file", t->remote_tls_key_file,
                 "With rediss://: the client certificate's private key (PEM)");
  app.add_option("--kv-remote-tls-server-name", t->remote_tls_server_name,
                 "With rediss://: the name sent as SNI and verified in the server's certificate (default: the URL's host)");
  app.add_option("--kv-tier-key-file", t->key_file,
                 "File holding the HMAC key (16 bytes or more) every chunk carries; required with --kv-remote, so a "
                 "writable Redis cannot feed KV to other replicas");
  app.add_option("--kv-tier-chunk-tokens", t->chunk_tokens,
                 "Tokens per KV chunk, the tiers' unit (a multiple of the KV block size, 64)")
      ->check(CLI::PositiveNumber);
}

void CheckKvTierFlags(const KvTierOptions& t) {
  if (!t.disk_dir.empty() && t.disk_gib <= 0) throw CLI::ValidationError("--kv-disk-dir", "needs --kv-disk-gib > 0");
  if (t.disk_dir.empty() && t.disk_gib > 0) throw CLI::ValidationError("--kv-disk-gib", "needs --kv-disk-dir");
  if (!t.remote.empty() && t.key_file.empty())
    throw CLI::ValidationError("--kv-remote",
                               "needs --kv-tier-key-file: chunks in a shared Redis must carry an HMAC, or a writable "
                               "Redis could feed KV to every replica");
  if (t.remote.empty() && !t.remote_password_file.empty())
    throw CLI::ValidationError("--kv-remote-password-file", "needs --kv-remote");
  const bool tls = t.remote.rfind("rediss://", 0) == 0;
  for (const auto& [flag, value] : {std::pair{"--kv-remote-tls-ca-file", &t.remote_tls_ca_file},
                                    std::pair{"--kv-remote-tls-cert-file", &t.remote_tls_cert_file},
                                    std::pair{"--kv-remote-tls-key-file", &t.remote_tls_key_file},
                                    std::pair{"--kv-remote-tls-server-name", &t.remote_tls_server_name}})
    if (!value->empty() && !tls) throw CLI::ValidationError(flag, "needs a TLS --kv-remote, rediss://HOST:PORT");
  if (t.remote_tls_cert_file.empty() != t.remote_tls_key_file.empty())
    throw CLI::ValidationError(t.remote_tls_cert_file.empty() ? "--kv-remote-tls-key-file" : "--kv-remote-tls-cert-file",
                               "--kv-remote-tls-cert-file and --kv-remote-tls-key-file go together");
}

}  // namespace

std::string ServerOptions::Describe() const {
  std::ostringstream s;
  s << "bptserve configuration:\n"
    << "  model:             " << engine.model_dir << "\n"
    << "  listen:            " << host << ":" << port << (tls_cert.empty() ? " (plaintext)" : " (TLS)")
    << (tls_client_ca.empty() ? "" : " (mTLS)") << "\n"
    << "  HTTP (OpenAI API): " << (http_port < 0 ? std::string("off") : host + ":" + std::to_string(http_port)) << (http_port >= 0 && !tls_cert.empty() ? " (TLS)" : "") << "\n"
    << "  model name:        " << ModelName() << "\n"
    << "  metrics:           " << (metrics_port < 0 ? std::string("off") : host + ":" + std::to_string(metrics_port) + "/metrics") << "\n"
    << "  device:            " << engine.device << "\n"
    << "  weight dtype:      " << ElementTypeName(engine.weight_dtype) << "\n"
    << "  KV dtype:          " << ElementTypeName(engine.kv_dtype) << "\n"
    << "  CPU ISA:           " << CpuIsaName(engine.cpu.isa) << "\n"
    << "  max message:       " << max_message_mb << " MiB\n"
    << "  max prompt tokens: " << (max_prompt_tokens > 0 ? std::to_string(max_prompt_tokens) : "model context limit") << "\n"
    << "  max queue:         " << engine.scheduler.max_queue << "\n"
    << "  max running:       " << engine.scheduler.max_running << "\n"
    << "  prefill block:     " << engine.scheduler.prefill_block << " tokens\n"
    << "  KV capacity:       " << (engine.kv_cache.capacity_tokens > 0 ? std::to_string(engine.kv_cache.capacity_tokens) + " tokens" : "engine default") << "\n"
    << "  KV memory share:   " << engine.kv_cache.memory_fraction << "\n"
    << "  KV tiers:          " << DescribeKvTiers(engine.kv_tiers) << "\n"
    << "  KV cache salt:     " << (kv_cache_salt_per_api_key ? "per API key" : "none") << "\n"
    << "  generation config: " << engine.generation_config << "\n"
    << "  tokenizer threads: " << tokenizer_threads << "\n"
    << "  API keys:          " << (api_key_file.empty() ? "off" : api_key_file) << "\n"
    << "  reflection:        " << (api_key_file.empty() || reflection_without_key ? "open" : "needs a key") << "\n"
    << "  drain:             " << drain_seconds << " s\n";
  return s.str();
}

std::string ServerOptions::ModelName() const {
  if (!served_model_name.empty()) return served_model_name;
  std::string dir = engine.model_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

StatusOr<ServerOptions> ParseServerOptions(int argc, char** argv, int* exit_code) {
  ServerOptions o;
  o.engine.model_dir = DefaultModelDir();
  CLI::App app{"bptserve: gRPC inference for very long prompts"};
  app.add_option("--model", o.engine.model_dir, "Model directory (Hugging Face layout); default: the demo model");
  app.add_option("--host", o.host, "Address to listen on");
  app.add_option("--port", o.port, "gRPC port (0: any free port)")->check(CLI::Range(0, 65535));
  app.add_option("--metrics-port", o.metrics_port, "Prometheus /metrics port (-1: off)")->check(CLI::Range(-1, 65535));
  app.add_option("--http-port", o.http_port, "OpenAI-compatible HTTP API port (0: any free port; -1: off)")
      ->check(CLI::Range(-1, 65535));
  app.add_option("--served-model-name", o.served_model_name,
                 "The model's id in the HTTP API (default: the model directory's name)");
  app.add_option("--device", o.engine.device, "Compute device")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  AddStorageFlags(app, &o.engine);
  app.add_option("--max-message-mb", o.max_message_mb, "Largest request message in MiB")->check(CLI::Range(1, 2047));
  app.add_option("--max-prompt-tokens", o.max_prompt_tokens, "Longest prompt accepted (0: the model's limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-queue", o.engine.scheduler.max_queue, "Requests that may wait for the engine")->check(CLI::NonNegativeNumber);
  app.add_option("--max-running", o.engine.scheduler.max_running, "Requests batched into one engine step")->check(CLI::PositiveNumber);
  app.add_option("--prefill-block", o.engine.scheduler.prefill_block, "Tokens per engine step (prefill chunks and decodes)")
      ->check(CLI::PositiveNumber);
  app.add_option("--generation-config", o.engine.generation_config,
                 "auto: the model's generation_config.json sets the sampling defaults; none: bptserve's")
      ->check(CLI::IsMember({"auto", "none"}));
  app.add_option("--kv-memory-fraction", o.engine.kv_cache.memory_fraction,
                 "Share of the memory left after weights and workspace that the KV cache takes (with --kv-capacity 0)")
      ->check(CLI::Range(0.01, 1.0));
  app.add_option("--kv-capacity", o.engine.kv_cache.capacity_tokens, "KV cache capacity in tokens (0: engine default)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", o.engine.cpu.num_threads, "CPU threads (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--tokenizer-threads", o.tokenizer_threads, "Threads that tokenize text prompts")
      ->check(CLI::PositiveNumber);
  auto* cert = app.add_option("--tls-cert", o.tls_cert, "PEM certificate chain (enables TLS, for gRPC and HTTP)");
  auto* key = app.add_option("--tls-key", o.tls_key, "PEM private key");
  app.add_option("--tls-client-ca", o.tls_client_ca, "PEM CA: require and verify client certificates (mTLS)")
      ->needs(cert);
  cert->needs(key);
  key->needs(cert);
  app.add_option("--api-key-file", o.api_key_file, "File of accepted API keys, one per line (bearer tokens)");
  app.add_flag("--reflection-without-key", o.reflection_without_key,
               "With --api-key-file: answer server reflection without a key (it lists the API, nothing else)");
  auto* salt = app.add_flag("--kv-cache-salt-per-api-key", o.kv_cache_salt_per_api_key,
                            "With --api-key-file: root each request's cache keys in a hash of its API key, so tenants "
                            "never match (or time) each other's cached documents, in the pool or the tiers");
  app.add_option("--drain-seconds", o.drain_seconds,
                 "On SIGTERM, how long in-flight requests may finish (then the KV tiers' queued writes, in what is left)")
      ->check(CLI::NonNegativeNumber);
  AddKvTierFlags(app, &o.engine.kv_tiers);
  try {
    app.parse(argc, argv);
    if (o.kv_cache_salt_per_api_key && o.api_key_file.empty())
      throw CLI::ValidationError(salt->get_name(), "needs --api-key-file: without keys there is no tenant to salt by");
    CheckKvTierFlags(o.engine.kv_tiers);
  } catch (const CLI::ParseError& e) {
    *exit_code = app.exit(e);
    return InvalidArgument("bad flags");
  }
  return o;
}

}  // namespace bpt::server
