// Every setting of the engine, in one tree with one name and one default each. The server's
// flags, the tools and the tests fill this struct; each part of the engine reads its own branch
// (the scheduler `scheduler`, the CPU backend `cpu`, the CUDA plugin `cuda` and `scheduler`),
// so a number never changes name on its way from the flag to the kernel.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bpt {

// How the weights or the KV cache are stored. auto: the device's own (fp32 on the CPU, the exact
// reference; bf16 on CUDA). Flag spelling: auto, fp32, bf16.
enum class ElementType { kAuto, kFloat32, kBFloat16 };
// False when `name` is none of the flag spellings.
bool ParseElementType(std::string_view name, ElementType* out);
const char* ElementTypeName(ElementType type);

// The instruction set the CPU kernels use, each level including the ones before it; bf16 adds
// AVX512-BF16's dot products for bf16 weights (every product on AMD, one-row products on Intel;
// see CpuMatmul::Bf16DotMaxRows). auto: the best this CPU has. Forcing a level the CPU lacks
// fails at load. Flag spelling: auto, portable, avx2, avx512, avx512-bf16.
enum class CpuIsa { kAuto, kPortable, kAvx2, kAvx512, kAvx512Bf16 };
bool ParseCpuIsa(std::string_view name, CpuIsa* out);
const char* CpuIsaName(CpuIsa isa);

// Which kernels compute attention on CUDA. auto: cuDNN's SDPA when libcudnn.so.9 loads and
// supports the model's shape on this GPU, else the own kernels; cudnn: cuDNN or a load error;
// own: the backend's own kernels (the fallback, and the second implementation the GPU tests
// compare cuDNN against). The CPU has only its own. Flag spelling: auto, cudnn, own.
enum class AttentionBackend { kAuto, kCudnn, kOwn };
bool ParseAttentionBackend(std::string_view name, AttentionBackend* out);
const char* AttentionBackendName(AttentionBackend backend);

struct SchedulerOptions {
  // Tokens in one forward step: the BPT prefill block, decode tokens included. Sizes the
  // runner's workspace and the CUDA step buffers. Flag --prefill-block.
  int prefill_block = 256;
  // Sequences in one step: the logit rows of the runner and the CUDA block tables. Flag --max-running.
  int max_running = 16;
  // Requests that may wait for a place in the batch; past it a new one is refused. Flag --max-queue.
  int max_queue = 64;
};

struct KvCacheOptions {
  int block_size = 64;              // tokens per KV block
  int64_t capacity_tokens = 0;      // 0: from memory_fraction (on the CPU, at most one context). Flag --kv-capacity
  double memory_fraction = 0.90;    // of the memory left after weights and workspace. Flag --kv-memory-fraction
  bool shuffle_blocks = false;      // tests: hand out blocks in a random order
};

// The tiers below the KV pool, all off by default: a chunk of chunk_tokens consecutive tokens'
// KV (every layer) is the unit each tier stores, under a key chained over every token before
// it and the model fingerprint (engine/kvtier).
struct KvTierOptions {
  double host_gib = 0;           // pinned host memory below a GPU pool; skipped on the CPU device. Flag --kv-host-gib
  std::string disk_dir;          // Flag --kv-disk-dir
  double disk_gib = 0;           // the disk tier's budget. Flag --kv-disk-gib
  std::string remote;            // redis[s]://[[user]:password@]host[:port][/db] (rediss: TLS). Flag --kv-remote
  std::string remote_password_file;  // Redis AUTH password, not on the command line. Flag --kv-remote-password-file
  int remote_timeout_ms = 2000;  // connect and each command; past it the request recomputes. Flag --kv-remote-timeout-ms
  // rediss:// only: the server's certificate is always verified, for its name. PEM CA bundle
  // (empty: the system's CAs). Flag --kv-remote-tls-ca-file
  std::string remote_tls_ca_file;
  std::string remote_tls_cert_file;    // client certificate (tls-auth-clients), with the key. Flag --kv-remote-tls-cert-file
  std::string remote_tls_key_file;     // Flag --kv-remote-tls-key-file
  std::string remote_tls_server_name;  // SNI and the name to verify (empty: the URL's host). Flag --kv-remote-tls-server-name
  std::string key_file;          // HMAC key of the chunks in Redis (shared); required with remote. Flag --kv-tier-key-file
  int chunk_tokens = 256;        // a multiple of kv_cache.block_size. Flag --kv-tier-chunk-tokens
  bool enabled() const { return !disk_dir.empty() || !remote.empty() || host_gib > 0; }
};

struct AttentionTiling {
  int query_tile = 32;  // query tokens per work item (times the GQA group of heads)
  int kv_tile = 128;    // keys per online-softmax step
};

struct CpuOptions {
  int num_threads = 0;  // 0: all hardware threads. Flag --threads
  CpuIsa isa = CpuIsa::kAuto;  // Flag --cpu-isa
  AttentionTiling attention_tiling;
};

struct CudaOptions {
  int device_ordinal = 0;
  // Decode steps (one token per sequence, all asking for logits) replay CUDA graphs captured
  // once per batch shape. bench --no-cuda-graphs turns it off to measure what it saves.
  bool graphs = true;
  // Sample on the device so that only the chosen ids reach the host.
  bool device_sampling = true;
  AttentionBackend attention_backend = AttentionBackend::kAuto;  // Flag --attention-backend
};

// Tests: a prompt that stands for some tokens of a much longer sequence. Positions from `start`
// on are rotated `length` further, as if `length` absent tokens came before them; attention sees
// only the tokens present. A few tokens then check RoPE at a million positions, and across a
// million-token distance, without that prefill.
struct RopePositionGap {
  int64_t start = 0;
  int64_t length = 0;
};

struct EngineOptions {
  std::string model_dir;
  std::string device = "auto";  // cpu, cuda, or auto (cuda when a GPU is visible). Flag --device
  int64_t max_model_len = 0;    // 0: max_position_embeddings from config.json
  int ffn_sub_block = 128;      // FFN rows held at once (at most prefill_block)
  // auto: generation_config.json's sampling defaults (temperature, top_k, top_p, min_p,
  // repetition_penalty) for the fields a request leaves unset; none: SamplingParams' own.
  // Its end-of-turn ids apply either way. Flag --generation-config
  std::string generation_config = "auto";
  ElementType weight_dtype = ElementType::kAuto;  // Flag --weight-dtype
  ElementType kv_dtype = ElementType::kAuto;      // Flag --kv-dtype
  RopePositionGap rope_position_gap;
  SchedulerOptions scheduler;
  KvCacheOptions kv_cache;
  KvTierOptions kv_tiers;
  CpuOptions cpu;
  CudaOptions cuda;
};

}  // namespace bpt
