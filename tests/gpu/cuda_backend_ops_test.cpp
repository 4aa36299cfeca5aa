// Every CUDA backend op against the CPU backend (fp32) on random bf16-exact data, with the
// GPU output poisoned (NaN) before each run: test-backend-ops for this engine. Tolerances are
// relative L2 errors: 1e-2 for bf16 outputs (one rounding to 8 mantissa bits is 2^-9 per
// element), 1e-3 for fp32 outputs of bf16 inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cpu_backend.h"
#include "kv_block_manager.h"
#include "rope.h"
#include "cuda_test_util.h"

namespace bpt {
namespace {

using testing::AllFinite;
using testing::RandomBf16Values;
using testing::RelativeError;

constexpr double kBf16Tolerance = 1e-2;
constexpr double kFp32OutTolerance = 1e-3;

nlohmann::json BaseConfig() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 1000},
          {"hidden_size", 320},
          {"intermediate_size", 864},
          {"num_hidden_layers", 1},
          {"num_attention_heads", 8},
          {"num_key_value_heads", 2},
          {"head_dim", 64},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"max_position_embeddings", 4 << 20}};
}

// Test and property names. (GCC 12 warns falsely on "literal" + std::to_string(...).)
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  return s.str();
}

ModelConfig Parse(const nlohmann::json& j) {
  auto c = ParseModelConfig(j.dump(), "test config");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

// Both backends' copies of one tensor.
struct Both {
  Tensor cpu, gpu;
};

// The two backends, one KV layer each over the same block tables.
class OpsHarness {
 public:
  OpsHarness(const ModelConfig& config, int prefill_block, int max_running, int64_t num_blocks, int block_size)
      : config_(config), rope_(config), blocks_(num_blocks, block_size) {
    cpu_ = std::make_unique<CpuBackend>(config, CpuOptions{}, ElementType::kFloat32, ElementType::kFloat32);
    EngineOptions gpu_options;
    gpu_options.scheduler.prefill_block = prefill_block;
    gpu_options.scheduler.max_running = max_running;
    auto gpu = CudaBackend::Create(config, gpu_options);
    EXPECT_TRUE(gpu.ok()) << gpu.status().ToString();
    gpu_ = std::move(gpu).value();
    blocks_.ShuffleFreeBlocks(17);
    EXPECT_TRUE(cpu_->AllocateKvPool(1, num_blocks, block_size, config.kv_dim()).ok());
    const Status s = gpu_->AllocateKvPool(1, num_blocks, block_size, config.kv_dim());
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  Both Activation(int64_t rows, int64_t cols, Precision precision = Precision::kCompute) {
    auto c = cpu_->AllocateActivation(rows, cols, precision);
    auto g = gpu_->AllocateActivation(rows, cols, precision);
    EXPECT_TRUE(c.ok() && g.ok());
    return {*c, *g};
  }
  Both Weight(int64_t rows, int64_t cols, uint64_t seed, float scale = 1.0f) {
    HostMatrix m{RandomBf16Values(rows * cols, seed, scale), rows, cols};
    HostMatrix copy = m;
    auto c = cpu_->UploadWeight(std::move(m));
    auto g = gpu_->UploadWeight(std::move(copy));
    EXPECT_TRUE(c.ok() && g.ok());
    return {*c, *g};
  }
  void Fill(const Both& t, const std::vector<float>& values) {
    ASSERT_EQ(static_cast<int64_t>(values.size()), t.cpu.rows * t.cpu.cols);
    std::copy(values.begin(), values.end(), static_cast<float*>(t.cpu.data));
    const Status s = gpu_->CopyFromHost(values.data(), t.gpu);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void FillRandom(const Both& t, uint64_t seed, float scale = 1.0f) {
    Fill(t, RandomBf16Values(t.cpu.rows * t.cpu.cols, seed, scale));
  }
  void PoisonGpu(const Both& t) {
    const std::vector<float> nan(t.gpu.rows * t.gpu.cols, std::numeric_limits<float>::quiet_NaN());
    ASSERT_TRUE(gpu_->CopyFromHost(nan.data(), t.gpu).ok());
  }
  std::vector<float> Read(Backend& backend, const Tensor& t) {
    std::vector<float> v(t.rows * t.cols);
    const Status s = backend.CopyToHost(t, v.data());
    EXPECT_TRUE(s.ok()) << s.ToString();
    return v;
  }
  // GPU output against CPU output: finite everywhere (every element written) and close.
  void Expect(const Both& t, double tolerance, const std::string& what) {
    const std::vector<float> want = Read(*cpu_, t.cpu), got = Read(*gpu_, t.gpu);
    EXPECT_TRUE(AllFinite(got)) << what << ": an output element was not written";
    const double err = RelativeError(got, want);
    EXPECT_LE(err, tolerance) << what;
    ::testing::Test::RecordProperty(what, std::to_string(err));
  }
  // Both backends begin the same step.
  void Begin(const StepLayout& step) {
    Status s = cpu_->BeginStep(step, rope_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = gpu_->BeginStep(step, rope_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  // One sequence from position 0 with n tokens (ids random in the vocabulary).
  StepLayout SimpleStep(int32_t n, uint64_t seed) {
    table_.clear();
    blocks_.Release(&table_);
    EXPECT_TRUE(blocks_.Reserve(&table_, n).ok());
    StepLayout step;
    std::mt19937 rng(static_cast<uint32_t>(seed));
    for (int32_t i = 0; i < n; ++i) step.token_ids.push_back(static_cast<int32_t>(rng() % config_.vocab_size));
    step.sequences.push_back({0, n, &table_, true});
    return step;
  }

  const ModelConfig& config() const { return config_; }
  CpuBackend& cpu() { return *cpu_; }
  CudaBackend& gpu() { return *gpu_; }
  KvBlockManager& blocks() { return blocks_; }

 private:
  ModelConfig config_;
  Rope rope_;
  KvBlockManager blocks_;
  BlockTable table_;
  std::unique_ptr<CpuBackend> cpu_;
  std::unique_ptr<CudaBackend> gpu_;
};

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override { BPT_SKIP_WITHOUT_CUDA(); }
};

TEST_F(CudaOps, EmbedGathersRows) {
  OpsHarness h(Parse(BaseConfig()), 256, 4, 16, 64);
  const Both table = h.Weight(1000, 320, 1);
  const StepLayout step = h.SimpleStep(173, 2);
  h.Begin(step);
  const Both out = h.Activation(173, 320);
  h.PoisonGpu(out);
  ASSERT_TRUE(h.cpu().Embed(table.cpu, out.cpu).ok());
  ASSERT_TRUE(h.gpu().Embed(table.gpu, out.gpu).ok());
  h.Expect(out, 0.0, "embed");  // a copy: exact
}

TEST_F(CudaOps, RmsNormAndFusedAddRmsNorm) {
  OpsHarness h(Parse(BaseConfig()), 256, 4, 16, 64);
  for (int64_t hidden : {320, 2048, 4097}) {
    const int64_t rows = 37;
    const std::string size = Cat("_", hidden);
    const Both weight = h.Weight(1, hidden, 3);
    const Both x = h.Activation(rows, hidden), y = h.Activation(rows, hidden), out = h.Activation(rows, hidden);
    h.FillRandom(x, 4, 3.0f);
    h.PoisonGpu(out);
    ASSERT_TRUE(h.cpu().RmsNorm(x.cpu, weight.cpu, 1e-5f, out.cpu).ok());
    ASSERT_TRUE(h.gpu().RmsNorm(x.gpu, weight.gpu, 1e-5f, out.gpu).ok());
    h.Expect(out, kBf16Tolerance, "rms_norm" + size);

    h.FillRandom(y, 5, 3.0f);
    h.PoisonGpu(out);
    ASSERT_TRUE(h.cpu().AddRmsNorm(x.cpu, y.cpu, weight.cpu, 1e-5f, out.cpu).ok());
    ASSERT_TRUE(h.gpu().AddRmsNorm(x.gpu, y.gpu, weight.gpu, 1e-5f, out.gpu).ok());
    h.Expect(x, kBf16Tolerance, "add_rms_norm_residual" + size);
    h.Expect(out, kBf16Tolerance, "add_rms_norm_out" + size);

    // The model runner writes the norm over its own input (out aliases y).
    h.FillRandom(y, 6, 3.0f);
    ASSERT_TRUE(h.cpu().AddRmsNorm(x.cpu, y.cpu, weight.cpu, 1e-5f, y.cpu).ok());
    ASSERT_TRUE(h.gpu().AddRmsNorm(x.gpu, y.gpu, weight.gpu, 1e-5f, y.gpu).ok());
    h.Expect(y, kBf16Tolerance, "add_rms_norm_in_place" + size);
  }
}

TEST_F(CudaOps, LinearWithAndWithoutBiasAndFp32Output) {
  OpsHarness h(Parse(BaseConfig()), 256, 4, 16, 64);
  for (auto [rows, in, out_features] : {std::tuple{1, 320, 1000}, {53, 200, 300}, {256, 2048, 5632}, {7, 5632, 2048}}) {
    const std::string name = Cat(rows, "x", in, "x", out_features);
    const Both w = h.Weight(out_features, in, 7, 0.05f), bias = h.Weight(1, out_features, 8);
    const Both x = h.Activation(rows, in), out = h.Activation(rows, out_features);
    h.FillRandom(x, 9);
    h.PoisonGpu(out);
    ASSERT_TRUE(h.cpu().Linear(x.cpu, w.cpu, nullptr, out.cpu).ok());
    ASSERT_TRUE(h.gpu().Linear(x.gpu, w.gpu, nullptr, out.gpu).ok());
    h.Expect(out, kBf16Tolerance, "linear_" + name);
    h.PoisonGpu(out);
    ASSERT_TRUE(h.cpu().Linear(x.cpu, w.cpu, &bias.cpu, out.cpu).ok());
    ASSERT_TRUE(h.gpu().Linear(x.gpu, w.gpu, &bias.gpu, out.gpu).ok());
    h.Expect(out, kBf16Tolerance, "linear_bias_" + name);
    const Both logits = h.Activation(rows, out_features, Precision::kFloat32);
    h.PoisonGpu(logits);
    ASSERT_TRUE(h.cpu().Linear(x.cpu, w.cpu, nullptr, logits.cpu).ok());
    ASSERT_TRUE(h.gpu().Linear(x.gpu, w.gpu, nullptr, logits.gpu).ok());
    h.Expect(logits, kFp32OutTolerance, "linear_fp32_out_" + name);
  }
}

TEST_F(CudaOps, AddSwiGluGatherRows) {
  OpsHarness h(Parse(BaseConfig()), 256, 8, 16, 64);
  const Both x = h.Activation(61, 864), y = h.Activation(61, 864);
  h.FillRandom(x, 10);
  h.FillRandom(y, 11);
  ASSERT_TRUE(h.cpu().Add(x.cpu, y.cpu).ok());
  ASSERT_TRUE(h.gpu().Add(x.gpu, y.gpu).ok());
  h.Expect(x, kBf16Tolerance, "add");

  const Both gate_up = h.Activation(61, 2 * 864), act = h.Activation(61, 864);
  h.FillRandom(gate_up, 12, 4.0f);
  h.PoisonGpu(act);
  ASSERT_TRUE(h.cpu().SwiGlu(gate_up.cpu, act.cpu).ok());
  ASSERT_TRUE(h.gpu().SwiGlu(gate_up.gpu, act.gpu).ok());
  h.Expect(act, kBf16Tolerance, "swiglu");

  const std::vector<int64_t> rows = {60, 0, 17, 17, 33};
  const Both gathered = h.Activation(5, 864);
  h.PoisonGpu(gathered);
  ASSERT_TRUE(h.cpu().GatherRows(x.cpu, rows, gathered.cpu).ok());
  ASSERT_TRUE(h.gpu().GatherRows(x.gpu, rows, gathered.gpu).ok());
  h.Expect(gathered, 0.0, "gather_rows");
}

// RoPE at positions past a million, for every scaling type the engine parses.
TEST_F(CudaOps, RopeEveryScalingType) {
  const std::vector<std::pair<std::string, nlohmann::json>> scalings = {
      {"none", nullptr},
      {"linear", {{"rope_type", "linear"}, {"factor", 4.0}}},
      {"dynamic", {{"rope_type", "dynamic"}, {"factor", 2.0}}},
      {"llama3",
       {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
        {"original_max_position_embeddings", 8192}}},
      {"yarn", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 4096}}}};
  for (const auto& [name, scaling] : scalings) {
    nlohmann::json j = BaseConfig();
    j["max_position_embeddings"] = 1 << 21;
    if (!scaling.is_null()) j["rope_scaling"] = scaling;
    const ModelConfig config = Parse(j);
    OpsHarness h(config, 256, 4, (1 << 21) / 64 + 1, 64);
    const int32_t n = 97;
    BlockTable table;
    ASSERT_TRUE(h.blocks().Reserve(&table, 1'200'000 + n).ok());
    StepLayout step;
    step.token_ids.assign(n, 5);
    step.sequences.push_back({1'200'000, n, &table, true});
    h.Begin(step);
    const AttentionShape shape{config.num_heads, config.num_kv_heads, config.head_dim, 0};
    const Both qkv = h.Activation(n, config.q_dim() + 2 * config.kv_dim());
    h.FillRandom(qkv, 13);
    ASSERT_TRUE(h.cpu().ApplyRope(qkv.cpu, shape).ok());
    ASSERT_TRUE(h.gpu().ApplyRope(qkv.gpu, shape).ok());
    h.Expect(qkv, kBf16Tolerance, "rope_" + name);
  }
}

// ---- KV append and attention ----

struct SequenceCase {
  int64_t history;  // tokens already cached
  int32_t step;     // tokens in the checked step
};

struct AttentionCase {
  std::string name;
  int head_dim, num_heads, num_kv_heads;
  std::vector<SequenceCase> sequences;  // batched into one step
  int64_t sliding_window = 0;
  int block_size = 64;
  int64_t extra_blocks = 8;  // pool blocks beyond what the sequences use
};

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }

class CudaAttention : public ::testing::TestWithParam<AttentionCase> {
 protected:
  void SetUp() override { BPT_SKIP_WITHOUT_CUDA(); }
};

TEST_P(CudaAttention, MatchesCpuBackend) {
  const AttentionCase& c = GetParam();
  nlohmann::json j = BaseConfig();
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_size"] = c.num_heads * c.head_dim;
  if (c.sliding_window > 0) {
    j["architectures"] = {"MistralForCausalLM"};
    j["sliding_window"] = c.sliding_window;
  }
  const ModelConfig config = Parse(j);
  const int q_cols = config.q_dim(), kv_cols = config.kv_dim(), cols = q_cols + 2 * kv_cols;
  const AttentionShape shape{config.num_heads, config.num_kv_heads, config.head_dim, config.sliding_window};

  int64_t used_blocks = 0;
  int32_t step_tokens = 0;
  for (const auto& s : c.sequences) {
    used_blocks += (s.history + s.step + c.block_size - 1) / c.block_size;
    step_tokens += s.step;
  }
  const int32_t chunk = 2048;
  OpsHarness h(config, std::max(chunk, step_tokens), static_cast<int>(c.sequences.size()),
               used_blocks + c.extra_blocks, c.block_size);
  // The last blocks of the pool first, so large pools put keys past 2^31 elements.
  std::vector<BlockTable> tables(c.sequences.size());
  int64_t next_block = used_blocks + c.extra_blocks - 1;
  for (size_t i = 0; i < c.sequences.size(); ++i) {
    const int64_t n = (c.sequences[i].history + c.sequences[i].step + c.block_size - 1) / c.block_size;
    for (int64_t b = 0; b < n; ++b) tables[i].push_back(static_cast<int32_t>(next_block--));
  }

  const Both qkv_buf = h.Activation(std::max(chunk, step_tokens), cols);
  uint64_t seed = 100;
  // Histories: appended in chunks, one sequence per step, no attention.
  for (size_t i = 0; i < c.sequences.size(); ++i) {
    for (int64_t pos = 0; pos < c.sequences[i].history; pos += chunk) {
      const int32_t n = static_cast<int32_t>(std::min<int64_t>(chunk, c.sequences[i].history - pos));
      StepLayout step;
      step.token_ids.assign(n, 0);
      step.sequences.push_back({pos, n, &tables[i], false});
      h.Begin(step);
      const Both qkv{qkv_buf.cpu.Rows(0, n), qkv_buf.gpu.Rows(0, n)};
      h.FillRandom(qkv, seed++);
      ASSERT_TRUE(h.cpu().AppendKv(0, qkv.cpu, shape).ok());
      ASSERT_TRUE(h.gpu().AppendKv(0, qkv.gpu, shape).ok());
    }
  }
  // The checked step: every sequence's slice in one step, as the scheduler batches them.
  StepLayout step;
  for (size_t i = 0; i < c.sequences.size(); ++i) {
    step.token_ids.insert(step.token_ids.end(), c.sequences[i].step, 0);
    step.sequences.push_back({c.sequences[i].history, c.sequences[i].step, &tables[i], true});
  }
  h.Begin(step);
  const Both qkv{qkv_buf.cpu.Rows(0, step_tokens), qkv_buf.gpu.Rows(0, step_tokens)};
  h.FillRandom(qkv, seed++);
  const Both out = h.Activation(step_tokens, q_cols);
  h.PoisonGpu(out);
  ASSERT_TRUE(h.cpu().AppendKv(0, qkv.cpu, shape).ok());
  ASSERT_TRUE(h.gpu().AppendKv(0, qkv.gpu, shape).ok());
  ASSERT_TRUE(h.cpu().Attention(0, qkv.cpu, shape, out.cpu).ok());
  const Status s = h.gpu().Attention(0, qkv.gpu, shape, out.gpu);
  ASSERT_TRUE(s.ok()) << s.ToString();
  h.Expect(out, kBf16Tolerance, "attention");
}

std::vector<AttentionCase> AttentionCases() {
  std::vector<AttentionCase> cases;
  for (int d : {64, 128}) {
    for (auto [heads, kv_heads] : {std::pair{8, 8}, {8, 2}, {32, 4}}) {
      const std::string shape = Cat("d", d, "_h", heads, "_kv", kv_heads);
      cases.push_back({shape + "_one_key", d, heads, kv_heads, {{0, 1}}});
      cases.push_back({shape + "_prompt_63", d, heads, kv_heads, {{0, 63}}});
      cases.push_back({shape + "_prompt_65_block_16", d, heads, kv_heads, {{0, 65}}, 0, 16});
      cases.push_back({shape + "_chunk_after_1000", d, heads, kv_heads, {{1000, 301}}});
      cases.push_back({shape + "_decode_after_4099", d, heads, kv_heads, {{4099, 1}}});
      cases.push_back({shape + "_mixed_batch", d, heads, kv_heads, {{5000, 1}, {300, 77}, {70, 1}, {0, 129}, {1, 1}}});
    }
  }
  cases.push_back({"d32_h8_kv2_demo_shape", 32, 8, 2, {{700, 1}, {0, 200}}});
  // Long contexts: 128K keys, decode (split over KV) and a prefill chunk at the end.
  cases.push_back({"d64_h32_kv4_decode_128k", 64, 32, 4, {{131071, 1}}});
  cases.push_back({"d128_h32_kv8_decode_128k", 128, 32, 8, {{131071, 1}}});
  cases.push_back({"d64_h32_kv4_chunk_at_128k", 64, 32, 4, {{131072 - 256, 256}}});
  cases.push_back({"d64_h8_kv8_decode_1m", 64, 8, 8, {{1 << 20, 1}}});
  // Sliding window (Mistral): keys behind the window are skipped, across tile edges.
  cases.push_back({"d128_h32_kv8_window_100", 128, 32, 8, {{1000, 50}, {1000, 1}, {30, 1}}, 100});
  cases.push_back({"d64_h8_kv2_window_4096_decode", 64, 8, 2, {{20000, 1}}, 4096});
  // K/V element offsets past 2^31: slot * kv_dim with kv_dim 1024 and slots above 2.1M.
  cases.push_back({"d128_h8_kv8_index_overflow", 128, 8, 8, {{4096, 100}, {4196, 1}}, 0, 64, 34000});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaAttention, ::testing::ValuesIn(AttentionCases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace bpt
