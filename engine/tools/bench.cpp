// bench: prefill and decode throughput of the engine, one JSON line per measurement.
//   bench --preset demo                       the demo shape (made in a temporary directory)
//   bench --preset tinyllama --prompts 1024   the TinyLlama-1.1B shape
//   bench --model DIR                         any model directory
//   bench --preset demo --streams 1,8,32,64   continuous batching: concurrent streams
//   bench --preset demo --cached-doc 32768    a second request on a cached document
//   bench --preset smollm2-135m --tiered-doc 65536 --kv-disk-dir D --kv-remote redis://H:P --kv-tier-key-file K
//         time to first token of a question about a document: recomputed, from the pool, from disk
//         after an eviction, after a restart (disk), on a fresh replica (Redis); on a GPU with
//         --kv-host-gib G, from host memory after the eviction
//   bench --preset tinyllama --device cuda --prompts 8192,32768,131072 --prefill-blocks 2048
//         --decode-contexts 1024,32768          prefill and decode on the GPU
//   bench --preset tinyllama --device cuda --admission   the longest prompt the card admits
//   bench --preset smollm2-135m --threads 2 --prompts 1024,4096 --kv-dtype bf16   a CPU storage mode
//         (engine/tools/cpu_peer_bench.py runs these beside HF transformers and llama.cpp)
// Every line names the device, weight and KV dtypes, attention kernels and CPU threads it ran with.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "engine.h"
#include "engine_flags.h"
#include "model_config.h"
#include "random_model.h"

namespace {

int64_t PeakRssBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

std::vector<int32_t> RandomPrompt(int64_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = static_cast<int32_t>(rng() % vocab);
  return p;
}

// The engine, or null after printing why it could not be made.
std::unique_ptr<bpt::Engine> CreateEngine(const bpt::EngineOptions& options) {
  auto engine = bpt::Engine::Create(options);
  if (!engine.ok()) {
    std::cerr << engine.status().ToString() << "\n";
    return nullptr;
  }
  return std::move(engine).value();
}

// What every line carries: the configuration that ran (threads as the CPU backend resolves 0).
nlohmann::json RunFields(const bpt::Engine& engine, const std::string& label) {
  const bpt::ModelInfo& info = engine.model_info();
  const int requested = engine.options().cpu.num_threads;
  const int threads = requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return {{"model", label}, {"device", info.device}, {"weight_dtype", bpt::ElementTypeName(info.weight_dtype)},
          {"kv_dtype", bpt::ElementTypeName(info.kv_dtype)}, {"attention_kernels", info.attention_kernels},
          {"threads", threads}};
}

// Floating-point operations of one prefill of n tokens that ends with the last token's logits:
//   n * 2 * (linear weights of the layers: L * (h*q + 2*h*kv + q*h + 3*h*f))   q, k, v, o, gate, up, down
//   + 2 * vocab * h                                                            the last token's lm_head
//   + L * 2 * 2 * heads * head_dim * sum over positions i of keys attended     Q.K^T and P.V
// with keys attended = i + 1 (causal), at most the sliding window. Embedding lookups, norms, RoPE and
// the softmax are left out (a few per cent at most), so GFLOP/s against the compute floor is a
// slight underestimate.
double PrefillFlops(const bpt::ModelConfig& c, int64_t n) {
  const double h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  const double linear_per_token = 2.0 * c.num_layers * (h * q + 2 * h * kv + q * h + 3 * h * f);
  const double lm_head = 2.0 * c.vocab_size * h;
  const int64_t w = c.sliding_window > 0 ? std::min(c.sliding_window, n) : n;
  // sum_{i<n} min(i + 1, w) = w (w + 1) / 2 + (n - w) w
  const double keys = 0.5 * static_cast<double>(w) * static_cast<double>(w + 1) + static_cast<double>(n - w) * w;
  const double attention = 4.0 * c.num_layers * c.num_heads * c.head_dim * keys;
  return static_cast<double>(n) * linear_per_token + lm_head + attention;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())))];
}

// Records when each token of one request arrives.
struct Timeline : bpt::GenerationObserver {
  std::chrono::steady_clock::time_point submitted;
  std::vector<std::chrono::steady_clock::time_point> tokens;
  bool finished = false;
  bool OnToken(const bpt::TokenOutput&) override {
    tokens.push_back(std::chrono::steady_clock::now());
    return true;
  }
  void OnFinished(const bpt::StatusOr<bpt::GenerationResult>&) override { finished = true; }
};

// The longest prompt the default memory plan admits: the KV pool takes its share of the memory
// left after weights and workspace, and admission refuses what the pool cannot hold.
int RunAdmission(const std::string& label, bpt::EngineOptions options) {
  options.max_model_len = int64_t{1} << 40;  // the pool, not the position limit, decides here
  auto engine = CreateEngine(options);
  if (engine == nullptr) return 1;
  const auto plan = engine->memory_plan();
  const int64_t capacity = engine->kv_capacity_tokens();
  auto admitted = [&](int64_t prompt_tokens) {
    bpt::GenerationRequest r;
    r.prompt.assign(prompt_tokens, 5);
    r.stopping.max_new_tokens = 1;
    return engine->ValidateRequest(r);
  };
  const bpt::Status fits = admitted(capacity - 1), too_long = admitted(capacity);
  nlohmann::json line = RunFields(*engine, label);
  line.update({{"bench", "admission"}, {"kv_capacity_tokens", capacity}, {"longest_admitted_prompt", capacity - 1},
               {"admitted_at_capacity_minus_1", fits.ok()}, {"refused_at_capacity", !too_long.ok()},
               {"refusal", too_long.ToString()}, {"weight_bytes", plan.weight_bytes},
               {"workspace_bytes", plan.workspace_bytes}, {"kv_bytes_per_token", plan.kv_bytes_per_token}});
  std::cout << line.dump() << std::endl;
  return fits.ok() && !too_long.ok() ? 0 : 1;
}

int RunServingBenchmarks(const std::string& label, const std::vector<int>& streams, int64_t cached_doc,
                         const bpt::EngineOptions& base) {
  using Clock = std::chrono::steady_clock;
  for (int n : streams) {
    bpt::EngineOptions options = base;
    options.scheduler.max_running = n;
    options.scheduler.max_queue = n;
    options.kv_cache.capacity_tokens = static_cast<int64_t>(n) * (256 + 64) + 1024;
    auto engine = CreateEngine(options);
    if (engine == nullptr) return 1;
    std::vector<Timeline> timelines(n);
    const auto start = Clock::now();
    for (int i = 0; i < n; ++i) {
      bpt::GenerationRequest r;
      r.prompt = RandomPrompt(256, engine->model_info().vocab_size, 100 + i);
      r.sampling.seed = i;
      r.stopping.max_new_tokens = 64;
      r.stopping.ignore_eos = true;
      r.use_prefix_cache = false;
      timelines[i].submitted = Clock::now();
      if (!engine->Submit(r, &timelines[i]).ok()) return 1;
    }
    while (engine->HasWork())
      engine->Step();
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> ttft, itl;
    int64_t generated = 0;
    for (const auto& t : timelines) {
      ttft.push_back(std::chrono::duration<double>(t.tokens.front() - t.submitted).count());
      for (size_t i = 1; i < t.tokens.size(); ++i) itl.push_back(std::chrono::duration<double>(t.tokens[i] - t.tokens[i - 1]).count());
      generated += static_cast<int64_t>(t.tokens.size());
    }
    nlohmann::json line = RunFields(*engine, label);
    line.update({{"bench", "streams"}, {"streams", n}, {"prompt_tokens", 256},
                 {"new_tokens", 64}, {"generated_tokens_per_s", generated / wall},
                 {"ttft_p50_s", Percentile(ttft, 50)}, {"ttft_p99_s", Percentile(ttft, 99)},
                 {"itl_p50_s", Percentile(itl, 50)}, {"itl_p99_s", Percentile(itl, 99)}, {"wall_s", wall}});
    std::cout << line.dump() << std::endl;
  }
  if (cached_doc > 0) {
    bpt::EngineOptions options = base;
    options.kv_cache.capacity_tokens = cached_doc + 1024;
    auto engine = CreateEngine(options);
    if (engine == nullptr) return 1;
    auto document = RandomPrompt(cached_doc, engine->model_info().vocab_size, 5);
    double seconds[2];
    int64_t cached[2];
    for (int round = 0; round < 2; ++round) {
      bpt::GenerationRequest r;
      r.prompt = document;
      r.prompt.push_back(round + 3);  // a different question after the same document
      r.stopping.max_new_tokens = 1;
      r.stopping.ignore_eos = true;
      const auto t0 = Clock::now();
      auto result = engine->Generate(r, nullptr);
      if (!result.ok()) return 1;
      seconds[round] = std::chrono::duration<double>(Clock::now() - t0).count();
      cached[round] = result->cached_prompt_tokens;
    }
    nlohmann::json line = RunFields(*engine, label);
    line.update({{"bench", "prefix_cache"}, {"document_tokens", cached_doc},
                 {"first_request_s", seconds[0]}, {"second_request_s", seconds[1]},
                 {"second_cached_prompt_tokens", cached[1]}, {"saved_s", seconds[0] - seconds[1]}});
    std::cout << line.dump() << std::endl;
  }
  return 0;
}

// The KV tiers: one document, asked about after each way its KV can be found again. Every
// engine is new except where the case says otherwise; the question differs each time, so the
// last tokens are always computed.
int RunTierBenchmark(const std::string& label, int64_t doc_tokens, const bpt::EngineOptions& base) {
  using Clock = std::chrono::steady_clock;
  bpt::EngineOptions with_all = base;
  with_all.kv_cache.capacity_tokens = doc_tokens + 1024;
  if (with_all.kv_tiers.disk_dir.empty() || with_all.kv_tiers.disk_gib <= 0) {
    std::cerr << "--tiered-doc needs --kv-disk-dir and --kv-disk-gib\n";
    return 1;
  }
  bpt::EngineOptions disk_only = with_all, remote_only = with_all;
  disk_only.kv_tiers.host_gib = remote_only.kv_tiers.host_gib = 0;
  disk_only.kv_tiers.remote.clear();
  remote_only.kv_tiers.disk_dir.clear();
  remote_only.kv_tiers.disk_gib = 0;
  int question = 0;
  std::vector<int32_t> document;
  double recompute_s = 0;
  auto ask = [&](bpt::Engine& engine, const std::string& source, int64_t kv_bytes_per_token) -> bool {
    if (document.empty()) document = RandomPrompt(doc_tokens, engine.model_info().vocab_size, 5);
    bpt::GenerationRequest r;
    r.prompt = document;
    r.prompt.push_back(3 + question++);
    r.stopping.max_new_tokens = 1;
    r.stopping.ignore_eos = true;
    const auto t0 = Clock::now();
    auto result = engine.Generate(r, nullptr);
    if (!result.ok()) {
      std::cerr << result.status().ToString() << "\n";
      return false;
    }
    const double ttft = std::chrono::duration<double>(Clock::now() - t0).count();
    if (source == "recompute") recompute_s = ttft;
    const auto& from = result->cached_from;
    const int64_t tier_tokens = from.host + from.disk + from.remote;
    nlohmann::json line = RunFields(engine, label);
    line.update({{"bench", "kv_tiers"}, {"case", source}, {"document_tokens", doc_tokens}, {"ttft_s", ttft},
                 {"cached_prompt_tokens", result->cached_prompt_tokens}, {"from_pool", from.pool},
                 {"from_host", from.host}, {"from_disk", from.disk}, {"from_remote", from.remote}, {"kv_load_s", result->timings.kv_load_s},
                 {"kv_bytes_per_token", kv_bytes_per_token}, {"kv_tiers", engine.model_info().kv_tiers}});
    if (tier_tokens > 0 && result->timings.kv_load_s > 0)
      line["load_gb_per_s"] = static_cast<double>(tier_tokens * kv_bytes_per_token) / result->timings.kv_load_s / 1e9;
    if (recompute_s > 0 && source != "recompute") line["speedup_vs_recompute"] = recompute_s / ttft;
    std::cout << line.dump() << std::endl;
    return true;
  };
  {
    auto engine = CreateEngine(with_all);
    if (engine == nullptr) return 1;
    const int64_t kv_per_token = engine->memory_plan().kv_bytes_per_token;
    if (!ask(*engine, "recompute", kv_per_token)) return 1;
    const auto t0 = Clock::now();
    engine->FlushKvTiers(Clock::now() + std::chrono::hours(1));
    nlohmann::json line = RunFields(*engine, label);
    line.update({{"bench", "kv_tiers"}, {"case", "store"}, {"document_tokens", doc_tokens},
                 {"flush_after_answer_s", std::chrono::duration<double>(Clock::now() - t0).count()}});
    std::cout << line.dump() << std::endl;
    if (!ask(*engine, "pool_hit", kv_per_token)) return 1;
    // The pool hit's writes (each finds its chunk held already) hold its blocks until they end:
    // only then can the reset evict them.
    engine->FlushKvTiers(Clock::now() + std::chrono::hours(1));
    engine->ResetPrefixCache();
    // Out of the pool, the fastest tier holding it answers: host memory where there is one.
    const bool host = engine->model_info().kv_tiers.rfind("host", 0) == 0;
    if (!ask(*engine, host ? "host_after_eviction" : "disk_after_eviction", kv_per_token)) return 1;
  }
  {
    auto engine = CreateEngine(disk_only);
    if (engine == nullptr || !ask(*engine, "disk_after_restart", engine->memory_plan().kv_bytes_per_token)) return 1;
  }
  if (!remote_only.kv_tiers.remote.empty()) {
    auto engine = CreateEngine(remote_only);
    if (engine == nullptr || !ask(*engine, "remote_fresh_replica", engine->memory_plan().kv_bytes_per_token)) return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bptserve engine benchmark (JSON lines on stdout)"};
  bpt::EngineOptions base;
  base.device = "cpu";
  std::string model_dir, preset = "demo";
  std::vector<int64_t> decode_contexts;
  bool admission = false, no_cuda_graphs = false;
  std::vector<int64_t> prompts = {1024, 8192};
  std::vector<int> prefill_blocks = {256};
  std::vector<int> kv_block_sizes = {64};
  int decode_tokens = 64, repeats = 1;
  std::vector<int> streams;
  int64_t cached_doc = 0, tiered_doc = 0;
  app.add_option("--model", model_dir, "Model directory (default: make one from --preset)");
  app.add_option("--preset", preset, "demo, tinyllama or smollm2-135m")
      ->check(CLI::IsMember({"demo", "tinyllama", "smollm2-135m"}));
  app.add_option("--prompts", prompts, "Prompt lengths to prefill")->delimiter(',');
  app.add_option("--prefill-blocks", prefill_blocks, "Prefill block sizes to compare")->delimiter(',');
  app.add_option("--kv-block-sizes", kv_block_sizes, "KV block sizes to compare")->delimiter(',');
  app.add_option("--decode-tokens", decode_tokens, "Tokens to decode after the shortest prompt");
  app.add_option("--threads", base.cpu.num_threads, "CPU threads (0: all)");
  app.add_option("--repeats", repeats, "Runs per measurement (the best is reported)");
  app.add_option("--streams", streams, "Concurrent streams to batch (each: 256-token prompt, 64 new tokens)")
      ->delimiter(',');
  app.add_option("--cached-doc", cached_doc, "Document length for the prefix-cache measurement");
  app.add_option("--tiered-doc", tiered_doc, "Document length for the KV tiers' measurement (needs --kv-disk-dir)");
  app.add_option("--kv-host-gib", base.kv_tiers.host_gib, "Host-memory tier budget below a GPU pool (--tiered-doc)");
  app.add_option("--kv-disk-dir", base.kv_tiers.disk_dir, "Disk tier directory (--tiered-doc)");
  app.add_option("--kv-disk-gib", base.kv_tiers.disk_gib, "Disk tier budget (--tiered-doc)");
  app.add_option("--kv-remote", base.kv_tiers.remote, "Redis tier, redis://HOST:PORT (--tiered-doc)");
  app.add_option("--kv-tier-key-file", base.kv_tiers.key_file, "HMAC key of the chunks (--tiered-doc)");
  app.add_option("--device", base.device, "cpu, cuda or auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  bpt::AddStorageFlags(app, &base);
  app.add_option("--decode-contexts", decode_contexts, "Cached tokens before decoding (default: the shortest prompt)")
      ->delimiter(',');
  app.add_flag("--no-cuda-graphs", no_cuda_graphs, "Launch decode steps op by op (to measure what graphs save)");
  app.add_flag("--admission", admission, "Report the longest prompt the default KV pool admits, then exit");
  CLI11_PARSE(app, argc, argv);

  std::string label = model_dir;
  std::filesystem::path temp_dir;
  if (model_dir.empty()) {
    temp_dir = std::filesystem::temp_directory_path() / ("bptserve-bench-" + preset);
    bpt::RandomModelSpec spec;
    spec.config = bpt::PresetConfig(preset);
    spec.config["max_position_embeddings"] = 1 << 20;
    if (!std::filesystem::exists(temp_dir / "model.safetensors")) {
      const bpt::Status s = bpt::WriteRandomModel(temp_dir.string(), spec);
      if (!s.ok()) {
        std::cerr << s.ToString() << "\n";
        return 1;
      }
    }
    model_dir = temp_dir.string();
    label = preset;
  }

  base.model_dir = model_dir;
  if (admission) return RunAdmission(label, base);
  if (tiered_doc > 0) return RunTierBenchmark(label, tiered_doc, base);
  if (!streams.empty() || cached_doc > 0) return RunServingBenchmarks(label, streams, cached_doc, base);
  const auto config = bpt::LoadModelConfig(model_dir);
  if (!config.ok()) {
    std::cerr << config.status().ToString() << "\n";
    return 1;
  }
  if (decode_contexts.empty()) decode_contexts.push_back(*std::min_element(prompts.begin(), prompts.end()));
  const int64_t longest = std::max(*std::max_element(prompts.begin(), prompts.end()),
                                   *std::max_element(decode_contexts.begin(), decode_contexts.end()));
  for (int kv_block : kv_block_sizes) {
    for (int block : prefill_blocks) {
      bpt::EngineOptions options = base;
      options.cuda.graphs = !no_cuda_graphs;
      options.scheduler.prefill_block = block;
      options.kv_cache.block_size = kv_block;
      options.kv_cache.capacity_tokens = longest + decode_tokens + kv_block;
      auto engine_ptr = CreateEngine(options);
      if (engine_ptr == nullptr) return 1;
      auto& engine = *engine_ptr;
      const auto plan = engine.memory_plan();
      for (int64_t n : prompts) {
        const auto prompt = RandomPrompt(n, engine.model_info().vocab_size, 7);
        double best = 1e30;
        for (int r = 0; r < repeats; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          auto logits = engine.PromptLogits(prompt);
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (!logits.ok()) {
            std::cerr << logits.status().ToString() << "\n";
            return 1;
          }
          best = std::min(best, s);
        }
        nlohmann::json line = RunFields(engine, label);
        line.update({{"bench", "prefill"}, {"prompt_tokens", n}, {"prefill_block", block}, {"kv_block_size", kv_block},
                     {"seconds", best}, {"tokens_per_s", n / best}, {"gflop_per_s", PrefillFlops(*config, n) / best / 1e9},
                     {"weight_bytes", plan.weight_bytes}, {"workspace_bytes", plan.workspace_bytes},
                     {"kv_bytes", plan.kv_bytes_per_token * n}, {"peak_rss_bytes", PeakRssBytes()}});
        std::cout << line.dump() << std::endl;
      }
      for (int64_t n : decode_tokens > 0 ? decode_contexts : std::vector<int64_t>{}) {
        bpt::GenerationRequest request;
        request.prompt = RandomPrompt(n, engine.model_info().vocab_size, 7);
        request.sampling.temperature = 0;
        request.stopping.max_new_tokens = decode_tokens;
        request.stopping.ignore_eos = true;
        auto result = engine.Generate(request, nullptr);
        if (!result.ok()) {
          std::cerr << result.status().ToString() << "\n";
          return 1;
        }
        const auto& t = result->timings;
        const double decode_steps = static_cast<double>(result->token_ids.size() - 1);
        const double tokens_per_s = decode_steps / t.decode_s;
        // Each step reads every weight once (the tied head's too: it is the embedding's bytes).
        nlohmann::json line = RunFields(engine, label);
        line.update({{"bench", "decode"}, {"context_tokens", n}, {"prefill_block", block}, {"kv_block_size", kv_block},
                     {"new_tokens", result->token_ids.size()}, {"decode_seconds", t.decode_s},
                     {"tokens_per_s", tokens_per_s}, {"weight_gb_per_s", plan.weight_bytes * tokens_per_s / 1e9},
                     {"cuda_graphs", !no_cuda_graphs}, {"peak_rss_bytes", PeakRssBytes()}});
        std::cout << line.dump() << std::endl;
      }
    }
  }
  return 0;
}
