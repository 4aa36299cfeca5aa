// attention-bench: the CPU attention kernels alone, one JSON line per (level, KV dtype): one
// prefill block of queries at the end of a long cached context, as the BPT prefill meets it.
//   attention-bench --context 16384 --queries 256 --heads 9 --kv-heads 3 --head-dim 64
#include <time.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "cpu_backend.h"
#include "cpu_isa.h"
#include "kv_block_manager.h"
#include "rope.h"

namespace {

// CPU time of all the process's threads: per-core efficiency even on a machine that is busy.
double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU attention kernel benchmark (JSON lines on stdout)"};
  int64_t context = 16384;
  int queries = 256, heads = 9, kv_heads = 3, head_dim = 64, threads = 0, repeats = 3, block_size = 64;
  bpt::AttentionTiling tiling;
  std::vector<std::string> levels = {"portable", "avx2", "avx512", "avx512-bf16"}, kv_dtypes = {"fp32", "bf16"};
  app.add_option("--context", context, "Cached keys the queries attend over (the queries' own included)");
  app.add_option("--queries", queries, "Query tokens: one prefill block");
  app.add_option("--heads", heads, "Query heads");
  app.add_option("--kv-heads", kv_heads, "KV heads");
  app.add_option("--head-dim", head_dim, "Head dimension");
  app.add_option("--block-size", block_size, "Tokens per KV block");
  app.add_option("--query-tile", tiling.query_tile, "Query tokens per work item");
  app.add_option("--kv-tile", tiling.kv_tile, "Keys per online-softmax step");
  app.add_option("--threads", threads, "Threads (0: all)");
  app.add_option("--repeats", repeats, "Runs per measurement (the best is reported)");
  app.add_option("--levels", levels, "Kernel levels (cpu_isa.h spellings)")->delimiter(',');
  app.add_option("--kv-dtypes", kv_dtypes, "KV cache dtypes: fp32, bf16")->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  bpt::ModelConfig config;
  config.architecture = "LlamaForCausalLM";
  config.num_heads = heads;
  config.num_kv_heads = kv_heads;
  config.head_dim = head_dim;
  config.hidden_size = heads * head_dim;
  config.num_layers = 1;
  config.max_position_embeddings = context;
  const bpt::Rope rope(config);
  const bpt::AttentionShape shape{heads, kv_heads, head_dim, 0};
  const int q_cols = heads * head_dim, kv_cols = kv_heads * head_dim, cols = q_cols + 2 * kv_cols;
  const int group = heads / kv_heads;
  // Every query attends to the keys up to its own position.
  double flops = 0;
  for (int t = 0; t < queries; ++t) flops += 4.0 * heads * head_dim * static_cast<double>(context - queries + t + 1);

  for (const std::string& level_name : levels) {
    bpt::CpuIsa level;
    if (!bpt::ParseCpuIsa(level_name, &level) || !bpt::CpuSupports(level)) {
      std::cerr << "skipping level " << level_name << ": unknown or not supported by this CPU\n";
      continue;
    }
    for (const std::string& dtype_name : kv_dtypes) {
      bpt::ElementType kv_dtype;
      if (!bpt::ParseElementType(dtype_name, &kv_dtype) || kv_dtype == bpt::ElementType::kAuto) {
        std::cerr << "unknown KV dtype " << dtype_name << "\n";
        return 2;
      }
      bpt::CpuOptions options;
      options.num_threads = threads;
      options.isa = level;
      options.attention_tiling = tiling;
      bpt::CpuBackend backend(config, options, bpt::ElementType::kFloat32, kv_dtype);
      bpt::KvBlockManager blocks(context / block_size + 2, block_size);
      bpt::BlockTable table;
      if (!blocks.Reserve(&table, context).ok() ||
          !backend.AllocateKvPool(1, blocks.num_blocks(), block_size, kv_cols).ok())
        return 1;
      auto qkv_buf = backend.AllocateActivation(queries, cols, bpt::Precision::kFloat32);
      auto out_buf = backend.AllocateActivation(queries, q_cols, bpt::Precision::kFloat32);
      if (!qkv_buf.ok() || !out_buf.ok()) return 1;
      std::mt19937 rng(1);
      std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
      auto* qkv = static_cast<float*>(qkv_buf->data);
      // The whole context is appended a block at a time, then the last block is timed.
      double best = 1e30, best_cpu = 1e30;
      for (int64_t pos = 0; pos < context; pos += queries) {
        const int32_t n = static_cast<int32_t>(std::min<int64_t>(queries, context - pos));
        bpt::StepLayout step;
        step.token_ids.assign(n, 0);
        step.sequences.push_back({pos, n, &table, true});
        bpt::Tensor qkv_rows = qkv_buf->Rows(0, n), out_rows = out_buf->Rows(0, n);
        for (int64_t i = 0; i < int64_t{n} * cols; ++i) qkv[i] = uniform(rng);
        if (!backend.BeginStep(step, rope).ok() || !backend.AppendKv(0, qkv_rows, shape).ok()) return 1;
        if (pos + n < context) continue;
        for (int r = 0; r < repeats; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          const double cpu0 = ProcessCpuSeconds();
          if (!backend.Attention(0, qkv_rows, shape, out_rows).ok()) return 1;
          best_cpu = std::min(best_cpu, ProcessCpuSeconds() - cpu0);
          best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
      }
      nlohmann::json line = {{"bench", "cpu_attention"}, {"level", level_name}, {"kv_dtype", dtype_name},
                             {"attention_kernels", backend.attention_kernels()}, {"context", context},
                             {"queries", queries}, {"heads", heads}, {"kv_heads", kv_heads}, {"group", group},
                             {"head_dim", head_dim}, {"query_tile", tiling.query_tile}, {"kv_tile", tiling.kv_tile},
                             {"seconds", best}, {"gflops", flops / best / 1e9},
                             {"gflops_per_cpu_second", flops / best_cpu / 1e9}};
      std::cout << line.dump() << std::endl;
    }
  }
  return 0;
}
