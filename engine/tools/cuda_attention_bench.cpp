// cuda-attention-bench: the CUDA backend's attention alone, both implementations (cuDNN's SDPA
// and the own kernels), one JSON line per (backend, measurement), for the GPU script's figures:
//   prefill: one block of queries at the end of a cached context, in TFLOP/s;
//   decode: one query per sequence over its whole context, in TB/s of K and V read.
//   cuda-attention-bench --context 1048576 --queries 2048 --heads 32 --kv-heads 4 --head-dim 64
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "cuda_backend.h"
#include "kv_block_manager.h"
#include "rope.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

int Fail(const bpt::Status& s) {
  std::cerr << s.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CUDA attention benchmark (JSON lines on stdout)"};
  int64_t context = 32768;
  int queries = 2048, heads = 32, kv_heads = 4, head_dim = 64, block_size = 64, batch = 1, repeats = 3,
      decode_calls = 20;
  std::vector<std::string> backends = {"own", "cudnn"};
  app.add_option("--context", context, "Cached keys per sequence (the queries' own included)");
  app.add_option("--queries", queries, "Prefill query tokens: one prefill block at the end of the context");
  app.add_option("--heads", heads, "Query heads");
  app.add_option("--kv-heads", kv_heads, "KV heads");
  app.add_option("--head-dim", head_dim, "Head dimension");
  app.add_option("--block-size", block_size, "Tokens per KV block");
  app.add_option("--batch", batch, "Decoding sequences, each of --context keys");
  app.add_option("--repeats", repeats, "Prefill runs (the best is reported)");
  app.add_option("--decode-calls", decode_calls, "Back-to-back decode attention calls per measurement");
  app.add_option("--attention-backends", backends, "own, cudnn")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  if (bpt::CudaDeviceCount() == 0) return Fail(bpt::FailedPrecondition("no CUDA device visible"));

  bpt::ModelConfig config;
  config.architecture = "LlamaForCausalLM";
  config.num_heads = heads;
  config.num_kv_heads = kv_heads;
  config.head_dim = head_dim;
  config.hidden_size = heads * head_dim;
  config.num_layers = 1;
  config.vocab_size = 1000;
  config.max_position_embeddings = context;
  const bpt::Rope rope(config);
  const bpt::AttentionShape shape{heads, kv_heads, head_dim, 0};
  const int q_cols = heads * head_dim, kv_cols = kv_heads * head_dim, cols = q_cols + 2 * kv_cols;
  // Every prefill query attends to the keys up to its own position.
  double prefill_flops = 0;
  for (int t = 0; t < queries; ++t)
    prefill_flops += 4.0 * heads * head_dim * static_cast<double>(context - queries + t + 1);
  const double decode_bytes = 2.0 * batch * static_cast<double>(context) * kv_cols * 2;  // K and V, bf16

  for (const std::string& backend_name : backends) {
    bpt::EngineOptions options;
    if (!bpt::ParseAttentionBackend(backend_name, &options.cuda.attention_backend))
      return Fail(bpt::InvalidArgument("--attention-backends: '" + backend_name + "' is not one of auto, cudnn, own"));
    options.scheduler.prefill_block = queries;
    options.scheduler.max_running = batch;
    options.cuda.graphs = false;  // every call launched and timed as it is
    auto created = bpt::CudaBackend::Create(config, options);
    if (!created.ok()) return Fail(created.status());
    bpt::CudaBackend& backend = **created;
    bpt::KvBlockManager blocks(batch * ((context + block_size - 1) / block_size) + 1, block_size);
    std::vector<bpt::BlockTable> tables(batch);
    for (auto& table : tables)
      if (auto s = blocks.Reserve(&table, context); !s.ok()) return Fail(s);
    if (auto s = backend.AllocateKvPool(1, blocks.num_blocks(), block_size, kv_cols); !s.ok()) return Fail(s);
    auto qkv = backend.AllocateActivation(std::max(queries, batch), cols, bpt::Precision::kCompute);
    auto out = backend.AllocateActivation(std::max(queries, batch), q_cols, bpt::Precision::kCompute);
    if (!qkv.ok() || !out.ok()) return Fail(!qkv.ok() ? qkv.status() : out.status());
    std::vector<float> values(static_cast<size_t>(std::max(queries, batch)) * cols), sink(static_cast<size_t>(q_cols));
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
    for (float& v : values) v = uniform(rng);
    if (auto s = backend.CopyFromHost(values.data(), *qkv); !s.ok()) return Fail(s);

    // Every sequence's context, a prefill block at a time; the last block of sequence 0 is timed.
    double prefill_best = 1e30;
    for (int seq = 0; seq < batch; ++seq)
      for (int64_t pos = 0; pos < context; pos += queries) {
        const int32_t n = static_cast<int32_t>(std::min<int64_t>(queries, context - pos));
        bpt::StepLayout step;
        step.token_ids.assign(n, 0);
        step.sequences.push_back({pos, n, &tables[seq], true});
        const bpt::Tensor qkv_rows = qkv->Rows(0, n), out_rows = out->Rows(0, n);
        if (auto s = backend.BeginStep(step, rope); !s.ok()) return Fail(s);
        if (auto s = backend.AppendKv(0, qkv_rows, shape); !s.ok()) return Fail(s);
        if (seq != 0 || pos + n < context) continue;
        for (int r = 0; r < repeats; ++r) {
          if (auto s = backend.CopyToHost(out->Rows(0, 1), sink.data()); !s.ok()) return Fail(s);  // idle stream
          const auto t0 = Clock::now();
          if (auto s = backend.Attention(0, qkv_rows, shape, out_rows); !s.ok()) return Fail(s);
          if (auto s = backend.CopyToHost(out->Rows(0, 1), sink.data()); !s.ok()) return Fail(s);
          prefill_best = std::min(prefill_best, Seconds(t0));
        }
      }
    std::cout << nlohmann::json{{"bench", "cuda_attention_prefill"}, {"attention_kernels", backend.attention_kernels()},
                                {"context", context}, {"queries", queries}, {"heads", heads}, {"kv_heads", kv_heads},
                                {"head_dim", head_dim}, {"seconds", prefill_best},
                                {"tflops", prefill_flops / prefill_best / 1e12}}
                     .dump()
              << std::endl;

    // One query per sequence at its last position; the calls run back to back on the stream, so
    // their mean is the kernel time, launch overhead hidden behind the previous call.
    bpt::StepLayout step;
    step.token_ids.assign(batch, 0);
    for (int seq = 0; seq < batch; ++seq) step.sequences.push_back({context - 1, 1, &tables[seq], true});
    const bpt::Tensor qkv_rows = qkv->Rows(0, batch), out_rows = out->Rows(0, batch);
    if (auto s = backend.BeginStep(step, rope); !s.ok()) return Fail(s);
    if (auto s = backend.Attention(0, qkv_rows, shape, out_rows); !s.ok()) return Fail(s);  // first call: warm-up
    if (auto s = backend.CopyToHost(out->Rows(0, 1), sink.data()); !s.ok()) return Fail(s);
    const auto t0 = Clock::now();
    for (int c = 0; c < decode_calls; ++c)
      if (auto s = backend.Attention(0, qkv_rows, shape, out_rows); !s.ok()) return Fail(s);
    if (auto s = backend.CopyToHost(out->Rows(0, 1), sink.data()); !s.ok()) return Fail(s);
    const double per_call = Seconds(t0) / decode_calls;
    std::cout << nlohmann::json{{"bench", "cuda_attention_decode"}, {"attention_kernels", backend.attention_kernels()},
                                {"context", context}, {"batch", batch}, {"heads", heads}, {"kv_heads", kv_heads},
                                {"head_dim", head_dim}, {"seconds_per_call", per_call},
                                {"tb_per_s", decode_bytes / per_call / 1e12}}
                     .dump()
              << std::endl;
  }
  return 0;
}
