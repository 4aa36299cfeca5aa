// Every CUDA backend op against the CPU backend (fp32) on random bf16-exact data, with the
// GPU output poisoned (NaN) before each run: test-backend-ops for this engine. Tolerances are
// relative L2 errors: 1e-2 for bf16 outputs (one rounding to 8 mantissa bits is 2^-9 per
// element), 1e-3 for fp32 outputs of bf16 inputs; attention also bounds each (row, head)'s
// largest error (kAttentionMaxAbsTolerance), with the own kernels and with cuDNN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>

#include "cpu_backend.h"
#include "cuda_attention_plan.h"
#include "kv_block_manager.h"
#include "rope.h"
#include "cuda_test_util.h"

namespace bpt {
namespace {

using testing::AllFinite;
using testing::HeadError;
using testing::RandomBf16Values;
using testing::RelativeError;
using testing::RoundToBf16;
using testing::WorstHeadError;

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
    // These ops never reach attention (AttentionRig tests it with both backends): the own
    // kernels spare building cuDNN's graphs for every harness.
    gpu_options.cuda.attention_backend = AttentionBackend::kOwn;
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
//
// A group is one model shape and KV pool; its scenarios run on it one after another, each with
// fresh block tables and the pool and the decode partials poisoned (NaN) first, so that reading a
// slot no step of the scenario wrote fails. A scenario appends its sequences' histories, then runs
// one step of every sequence's slice (batched as the scheduler batches them) through AppendKv and
// Attention on the CUDA backend and on the CPU backend with an fp32 KV pool, the reference.
// Scenarios share a backend because, with cuDNN, each backend builds its SDPA graphs at start.

// Against the fp32 reference, per element: the inputs are bf16-exact and the scores accumulate in
// fp32, so what differs is the probabilities rounded to bf16 for the P V product (relative 2^-8
// each, so at most 2^-8 x max |v| = 2^-8 in an output) and the output rounded to bf16 (2^-9 below
// 1): 5.9e-3 at worst. 1e-2 leaves room for the fp32 scores; a needle key missed, read twice or
// let through the window edge moves an output by about max |v| / (needles the query sees, at
// most 30): 0.03 or more.
constexpr double kAttentionMaxAbsTolerance = 1e-2;
// Each attention backend is within that of the reference, so within twice that of the other.
constexpr double kBackendsMaxAbsTolerance = 2 * kAttentionMaxAbsTolerance;
// History rows appended per step.
constexpr int32_t kChunk = 2048;

struct SequenceCase {
  int64_t history;                    // tokens already cached
  int32_t step;                       // tokens in the checked step
  std::vector<int64_t> needles = {};  // key positions of a much larger dot product with every query
};

struct Scenario {
  std::string name;
  std::vector<SequenceCase> sequences;  // batched into one step
  // Queries times this: a power of two (exact in bf16); 8 and 16 make the softmax peaked.
  float q_scale = 1.0f;
};

struct AttentionGroup {
  std::string name;
  int head_dim, num_heads, num_kv_heads;
  int64_t sliding_window = 0;
  int block_size = 64;
  int64_t extra_blocks = 8;  // pool blocks beyond what the largest scenario uses
  std::vector<Scenario> scenarios;
};

struct AttentionParam {
  AttentionBackend backend;
  AttentionGroup group;
};

void PrintTo(const AttentionParam& p, std::ostream* os) {
  *os << AttentionBackendName(p.backend) << " " << p.group.name;
}

int64_t BlocksOf(const SequenceCase& c, int block_size) { return (c.history + c.step + block_size - 1) / block_size; }

int64_t BlocksOf(const Scenario& s, int block_size) {
  int64_t blocks = 0;
  for (const auto& c : s.sequences) blocks += BlocksOf(c, block_size);
  return blocks;
}

std::string Sci(double x) {
  std::ostringstream s;
  s << std::scientific << std::setprecision(2) << x;
  return s.str();
}

// The CPU reference and one or more CUDA backends (one per attention backend asked for) on one
// group's shape, one KV layer each.
class AttentionRig {
 public:
  // Fails the test, never skips it, when a CUDA backend cannot be made: with kCudnn, cuDNN must
  // load (the GPU host has it).
  void Init(const AttentionGroup& group, const std::vector<AttentionBackend>& backends) {
    nlohmann::json j = BaseConfig();
    j["num_attention_heads"] = group.num_heads;
    j["num_key_value_heads"] = group.num_kv_heads;
    j["head_dim"] = group.head_dim;
    j["hidden_size"] = group.num_heads * group.head_dim;
    if (group.sliding_window > 0) {
      j["architectures"] = {"MistralForCausalLM"};
      j["sliding_window"] = group.sliding_window;
    }
    auto config = ParseModelConfig(j.dump(), "test config");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = *config;
    rope_ = std::make_unique<Rope>(config_);
    shape_ = {config_.num_heads, config_.num_kv_heads, config_.head_dim, config_.sliding_window};
    block_size_ = group.block_size;
    int64_t most_blocks = 0, most_tokens = kChunk;
    int most_sequences = 1;
    for (const Scenario& s : group.scenarios) {
      most_blocks = std::max(most_blocks, BlocksOf(s, block_size_));
      int64_t tokens = 0;
      for (const auto& c : s.sequences) tokens += c.step;
      most_tokens = std::max(most_tokens, tokens);
      most_sequences = std::max(most_sequences, static_cast<int>(s.sequences.size()));
    }
    pool_blocks_ = most_blocks + group.extra_blocks;
    const int cols = config_.q_dim() + 2 * config_.kv_dim();

    cpu_ = std::make_unique<CpuBackend>(config_, CpuOptions{}, ElementType::kFloat32, ElementType::kFloat32);
    Status s = cpu_->AllocateKvPool(1, pool_blocks_, block_size_, config_.kv_dim());
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto cpu_qkv = cpu_->AllocateActivation(most_tokens, cols, Precision::kCompute);
    auto cpu_out = cpu_->AllocateActivation(most_tokens, config_.q_dim(), Precision::kCompute);
    ASSERT_TRUE(cpu_qkv.ok() && cpu_out.ok());
    cpu_qkv_ = *cpu_qkv;  // [most_tokens, q_dim + 2 * kv_dim] fp32
    cpu_out_ = *cpu_out;  // [most_tokens, q_dim] fp32

    for (AttentionBackend backend : backends) {
      EngineOptions options;
      options.scheduler.prefill_block = static_cast<int>(most_tokens);
      options.scheduler.max_running = most_sequences;
      options.cuda.attention_backend = backend;
      // A decode scenario's step would otherwise be captured into a graph the second time its
      // shape comes, and the copies this test makes between the ops cannot run in a capture.
      options.cuda.graphs = false;
      auto gpu = CudaBackend::Create(config_, options);
      ASSERT_TRUE(gpu.ok()) << AttentionBackendName(backend) << ": " << gpu.status().ToString();
      s = (*gpu)->AllocateKvPool(1, pool_blocks_, block_size_, config_.kv_dim());
      ASSERT_TRUE(s.ok()) << AttentionBackendName(backend) << ": " << s.ToString();
      ASSERT_EQ((*gpu)->attention_kernels(), backend == AttentionBackend::kCudnn ? "cudnn" : "cuda");
      auto qkv = (*gpu)->AllocateActivation(most_tokens, cols, Precision::kCompute);
      auto out = (*gpu)->AllocateActivation(most_tokens, config_.q_dim(), Precision::kCompute);
      ASSERT_TRUE(qkv.ok() && out.ok());
      gpus_.push_back({std::move(gpu).value(), *qkv, *out});  // qkv, out: as the CPU's, bf16
    }

    // [num_kv_heads, head_dim]: +-1, the direction of every needle key and of the queries that
    // find it.
    needle_direction_ = RandomBf16Values(config_.kv_dim(), 7);
    for (float& x : needle_direction_) x = x > 0 ? 1.0f : -1.0f;
  }

  // out[0] is the reference's output, then each CUDA backend's, in Init's order: [step tokens, q_dim].
  void Run(const Scenario& s, std::vector<std::vector<float>>* out) {
    ++scenarios_run_;
    for (Gpu& g : gpus_) {
      const Status poisoned = g.backend->PoisonForTests();
      ASSERT_TRUE(poisoned.ok()) << poisoned.ToString();
    }
    // Blocks from the end of the pool, shuffled: large pools put keys past 2^31 elements, and no
    // sequence's blocks are consecutive.
    const int64_t used = BlocksOf(s, block_size_);
    std::vector<int32_t> ids(used);
    std::iota(ids.begin(), ids.end(), static_cast<int32_t>(pool_blocks_ - used));
    std::shuffle(ids.begin(), ids.end(), std::mt19937(static_cast<uint32_t>(scenarios_run_)));
    std::vector<BlockTable> tables(s.sequences.size());
    auto next = ids.begin();
    for (size_t i = 0; i < s.sequences.size(); ++i) {
      const int64_t n = BlocksOf(s.sequences[i], block_size_);
      tables[i].assign(next, next + n);
      next += n;
    }
    // Histories: one sequence per step, no attention.
    for (size_t i = 0; i < s.sequences.size(); ++i)
      for (int64_t pos = 0; pos < s.sequences[i].history; pos += kChunk) {
        const int32_t n = static_cast<int32_t>(std::min<int64_t>(kChunk, s.sequences[i].history - pos));
        StepLayout step;
        step.token_ids.assign(n, 0);
        step.sequences.push_back({pos, n, &tables[i], false});
        ASSERT_NO_FATAL_FAILURE(RunStep(step, Rows(s, i, pos, n, false), nullptr));
      }
    StepLayout step;
    std::vector<float> values;  // [step tokens, q_dim + 2 * kv_dim]
    for (size_t i = 0; i < s.sequences.size(); ++i) {
      const SequenceCase& c = s.sequences[i];
      step.token_ids.insert(step.token_ids.end(), c.step, 0);
      step.sequences.push_back({c.history, c.step, &tables[i], true});
      const std::vector<float> rows = Rows(s, i, c.history, c.step, true);
      values.insert(values.end(), rows.begin(), rows.end());
    }
    ASSERT_NO_FATAL_FAILURE(RunStep(step, values, out));
  }

  const ModelConfig& config() const { return config_; }

 private:
  struct Gpu {
    std::unique_ptr<CudaBackend> backend;
    Tensor qkv, out;
  };

  // The needle key's scale for a sequence of `keys` keys. Its queries are (r + u) / 2 for random
  // r and the needle direction u, so a needle scores about scale * sqrt(head_dim) / 2 =
  // ln(keys) + 3 above the other keys (whose scores spread by 1/3): each needle outweighs all
  // other keys together about 20 times.
  float NeedleScale(int64_t keys) const {
    return RoundToBf16(static_cast<float>(2.0 * (std::log(static_cast<double>(keys)) + 3.0) /
                                          std::sqrt(static_cast<double>(config_.head_dim))));
  }

  // Sequence `seq`'s qkv rows for positions [first, first + n): [n, q_dim + 2 * kv_dim],
  // random bf16-exact values with the needle keys in place, the queries of the checked step
  // drawn toward the needles (if the sequence has any) and scaled.
  std::vector<float> Rows(const Scenario& s, size_t seq, int64_t first, int32_t n, bool checked) const {
    const SequenceCase& c = s.sequences[seq];
    const int d = config_.head_dim, q_cols = config_.q_dim(), kv_cols = config_.kv_dim();
    const int cols = q_cols + 2 * kv_cols, group = config_.num_heads / config_.num_kv_heads;
    const uint64_t seed = ((scenarios_run_ * 64 + seq) << 32) + static_cast<uint64_t>(first) + (checked ? 1u << 31 : 0);
    std::vector<float> rows;
    if (checked) {
      rows = RandomBf16Values(static_cast<size_t>(n) * cols, seed);
    } else {  // AppendKv reads K and V only: a history row's queries stay 0
      rows.assign(static_cast<size_t>(n) * cols, 0.0f);
      const std::vector<float> kv = RandomBf16Values(static_cast<size_t>(n) * 2 * kv_cols, seed);
      for (int32_t t = 0; t < n; ++t)
        std::copy_n(kv.begin() + static_cast<size_t>(t) * 2 * kv_cols, 2 * kv_cols,
                    rows.begin() + static_cast<size_t>(t) * cols + q_cols);
    }
    const float needle_scale = NeedleScale(c.history + c.step);
    for (int64_t p : c.needles) {
      if (p < first || p >= first + n) continue;
      float* k = rows.data() + (p - first) * cols + q_cols;
      for (int i = 0; i < kv_cols; ++i) k[i] = needle_scale * needle_direction_[i];
    }
    if (!checked) return rows;
    for (int32_t t = 0; t < n; ++t) {
      float* q = rows.data() + static_cast<size_t>(t) * cols;
      for (int h = 0; h < config_.num_heads; ++h)
        for (int i = 0; i < d; ++i) {
          float& x = q[h * d + i];
          if (!c.needles.empty()) x = RoundToBf16(0.5f * (x + needle_direction_[(h / group) * d + i]));
          x *= s.q_scale;
        }
    }
    return rows;
  }

  // Begins `step` on every backend, writes its qkv rows and appends their K and V; with `out`,
  // runs the attention too (into GPU outputs poisoned first, so every element must be written).
  void RunStep(const StepLayout& step, const std::vector<float>& values, std::vector<std::vector<float>>* out) {
    const int64_t n = step.num_tokens();
    const Tensor cpu_qkv = cpu_qkv_.Rows(0, n), cpu_out = cpu_out_.Rows(0, n);
    Status s = cpu_->BeginStep(step, *rope_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::copy(values.begin(), values.end(), static_cast<float*>(cpu_qkv.data));
    s = cpu_->AppendKv(0, cpu_qkv, shape_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (Gpu& g : gpus_) {
      s = g.backend->BeginStep(step, *rope_);
      ASSERT_TRUE(s.ok()) << s.ToString();
      s = g.backend->CopyFromHost(values.data(), g.qkv.Rows(0, n));
      ASSERT_TRUE(s.ok()) << s.ToString();
      s = g.backend->AppendKv(0, g.qkv.Rows(0, n), shape_);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    if (out == nullptr) return;
    const size_t count = static_cast<size_t>(n) * config_.q_dim();
    out->assign(1, std::vector<float>(count));
    s = cpu_->Attention(0, cpu_qkv, shape_, cpu_out);
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = cpu_->CopyToHost(cpu_out, out->front().data());
    ASSERT_TRUE(s.ok()) << s.ToString();
    const std::vector<float> nan(count, std::numeric_limits<float>::quiet_NaN());
    for (Gpu& g : gpus_) {
      const Tensor gpu_out = g.out.Rows(0, n);
      s = g.backend->CopyFromHost(nan.data(), gpu_out);
      ASSERT_TRUE(s.ok()) << s.ToString();
      s = g.backend->Attention(0, g.qkv.Rows(0, n), shape_, gpu_out);
      ASSERT_TRUE(s.ok()) << s.ToString();
      out->emplace_back(count);
      s = g.backend->CopyToHost(gpu_out, out->back().data());
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  ModelConfig config_;
  std::unique_ptr<Rope> rope_;
  AttentionShape shape_{};
  int block_size_ = 0;
  int64_t pool_blocks_ = 0;
  uint64_t scenarios_run_ = 0;  // seeds each scenario's data
  std::unique_ptr<CpuBackend> cpu_;
  Tensor cpu_qkv_, cpu_out_;
  std::vector<Gpu> gpus_;
  std::vector<float> needle_direction_;
};

// `got` against `want` ([rows, num_heads * head_dim]): every element written, the relative L2
// and the worst per-(row, head) maximum absolute error within bounds; both measures go to the
// test's properties (the GPU script's JSON) as <what>_rel_l2 and <what>_max_abs.
void ExpectClose(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                 const ModelConfig& config, double max_abs_tolerance) {
  const double rel = RelativeError(got, want);
  const HeadError worst = WorstHeadError(got, want, config.num_heads, config.head_dim);
  EXPECT_TRUE(AllFinite(got)) << what << ": an output element was not written, or a poisoned slot was read";
  EXPECT_LE(rel, kBf16Tolerance) << what << ": relative L2";
  EXPECT_LE(worst.max_abs, max_abs_tolerance)
      << what << ": max |error| at row " << worst.row << ", head " << worst.head;
  ::testing::Test::RecordProperty(what + "_rel_l2", Sci(rel));
  ::testing::Test::RecordProperty(what + "_max_abs",
                                  Cat(Sci(worst.max_abs), " (row ", worst.row, " head ", worst.head, ")"));
}

class CudaAttention : public ::testing::TestWithParam<AttentionParam> {
 protected:
  void SetUp() override { BPT_SKIP_WITHOUT_CUDA(); }

  void RunGroup() {
    const AttentionParam& p = GetParam();
    AttentionRig rig;
    ASSERT_NO_FATAL_FAILURE(rig.Init(p.group, {p.backend}));
    for (const Scenario& s : p.group.scenarios) {
      SCOPED_TRACE(s.name);
      std::vector<std::vector<float>> out;
      ASSERT_NO_FATAL_FAILURE(rig.Run(s, &out));
      ExpectClose(s.name, out[1], out[0], rig.config(), kAttentionMaxAbsTolerance);
    }
  }
};

// The long contexts (128K and 1M keys, offsets past 2^31), run in a later phase of the GPU script
// (--gtest_filter=*Long*).
class CudaAttentionLong : public CudaAttention {};

TEST_P(CudaAttention, MatchesCpuBackend) { RunGroup(); }
TEST_P(CudaAttentionLong, MatchesCpuBackend) { RunGroup(); }

// Keys on both sides of the edges of the own prefill kernel's 64-key tiles (cuda_attention.cu),
// of its decode chunks of 128 keys, and of cuDNN's tiles of 64 or 128.
std::vector<int64_t> TileEdges() { return {63, 64, 127, 128}; }

// Keys on both sides of every boundary a decode split may have whatever the GPU's SM count:
// split lengths are powers of two from kMinSplitKeys, counted from the query's first key.
std::vector<int64_t> SplitEdges(int64_t key_begin, int64_t keys) {
  std::vector<int64_t> edges;
  for (int64_t length = cuda::kMinSplitKeys; length < keys; length *= 2) {
    edges.push_back(key_begin + length - 1);
    edges.push_back(key_begin + length);
  }
  return edges;
}

// The first key outside and the first key inside the window of a query at each position.
std::vector<int64_t> WindowEdges(int64_t window, std::initializer_list<int64_t> positions) {
  std::vector<int64_t> edges;
  for (int64_t p : positions) {
    edges.push_back(p - window);
    edges.push_back(p - window + 1);
  }
  return edges;
}

std::vector<int64_t> Join(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<Scenario> Join(std::initializer_list<std::vector<Scenario>> sets) {
  std::vector<Scenario> all;
  for (const auto& set : sets) all.insert(all.end(), set.begin(), set.end());
  return all;
}

const std::vector<SequenceCase> kMixedBatch = {{5000, 1}, {300, 77}, {70, 1}, {0, 129}, {1, 1}};

std::vector<Scenario> BasicScenarios() {
  return {{"one_key", {{0, 1}}},
          {"prompt_63", {{0, 63}}},
          {"prompt_65", {{0, 65}}},
          {"chunk_after_1000", {{1000, 301}}},
          {"decode_after_4099", {{4099, 1}}},
          {"mixed_batch", kMixedBatch}};
}

// Queries x8 and x16: the softmax is peaked, a few keys carry the weight.
std::vector<Scenario> PeakedScenarios() {
  return {{"x8_chunk_after_1000", {{1000, 131}}, 8},
          {"x16_decode_after_4099", {{4099, 1}}, 16},
          {"x16_mixed_batch", kMixedBatch, 16}};
}

std::vector<Scenario> NeedleScenarios() {
  return {{"needles_tile_edges_prompt_200", {{0, 200, TileEdges()}}},
          {"needles_tile_edges_chunk_after_100", {{100, 157, TileEdges()}}},  // 63, 64 cached; 127, 128 in the step
          {"needles_split_edges_decode_after_4099", {{4099, 1, Join(TileEdges(), SplitEdges(0, 4100))}}},
          {"needles_x8_mixed_batch",
           {{4099, 1, SplitEdges(0, 4100)}, {0, 200, TileEdges()}, {70, 1}, {1000, 1, SplitEdges(0, 1001)}},
           8}};
}

// Lengths that fill no tile, block or split evenly.
std::vector<Scenario> OddScenarios() {
  return {{"prompt_3", {{0, 3}}},
          {"prompt_127", {{0, 127}}},
          {"chunk_257_after_999", {{999, 257}}},
          {"decode_after_4097", {{4097, 1}}},
          {"odd_mixed_batch", {{2047, 1}, {13, 31}, {4095, 1}, {511, 3}}},
          {"x16_odd_mixed_batch", {{2047, 1}, {13, 31}, {4095, 1}, {511, 3}}, 16}};
}

std::vector<AttentionGroup> ShortGroups() {
  const std::vector<Scenario> all = Join({BasicScenarios(), PeakedScenarios(), NeedleScenarios()});
  const std::vector<Scenario> some = Join({BasicScenarios(), NeedleScenarios()});
  std::vector<AttentionGroup> groups = {
      // GQA groups of 1 to 32 query heads per KV head; at d128 a group of 32 puts the own decode
      // kernel's shared memory above 48 KB. Block size 16: a 64-key tile spans four blocks.
      {"d64_h8_kv8", 64, 8, 8, 0, 64, 8, all},
      {"d64_h8_kv2_block_16", 64, 8, 2, 0, 16, 8, all},
      {"d64_h32_kv4", 64, 32, 4, 0, 64, 8, some},
      {"d64_h32_kv2_gqa_16", 64, 32, 2, 0, 64, 8, all},
      {"d64_h32_kv1_gqa_32_block_16", 64, 32, 1, 0, 16, 8, some},
      {"d128_h8_kv8_block_16", 128, 8, 8, 0, 16, 8, some},
      {"d128_h8_kv2", 128, 8, 2, 0, 64, 8, all},
      {"d128_h32_kv4", 128, 32, 4, 0, 64, 8, all},
      {"d128_h32_kv2_gqa_16", 128, 32, 2, 0, 64, 8, some},
      {"d128_h32_kv1_gqa_32", 128, 32, 1, 0, 64, 8, all},
      {"d32_h8_kv2", 32, 8, 2, 0, 64, 8, Join({{{"demo_shape", {{700, 1}, {0, 200}}}}, some})},
      // Odd head counts.
      {"d64_h12_kv3", 64, 12, 3, 0, 64, 8, OddScenarios()},
      {"d128_h7_kv7_block_16", 128, 7, 7, 0, 16, 8, OddScenarios()},
      // Sliding windows (Mistral): keys behind the window skipped, across tile and split edges.
      {"d128_h32_kv8_window_100", 128, 32, 8, 100, 64, 8,
       {{"window_100", {{1000, 50}, {1000, 1}, {30, 1}}},
        {"window_100_edges",
         {{1000, 50, WindowEdges(100, {1000, 1049})}, {1000, 1, WindowEdges(100, {1000})}, {30, 1}}},
        {"x16_window_100", {{1000, 50}, {1000, 1}, {30, 1}}, 16}}},
      {"d64_h8_kv2_window_4096_block_16", 64, 8, 2, 4096, 16, 8,
       {{"window_4096_decode", {{20000, 1}}},
        {"window_4096_edges_and_splits_decode",
         {{20000, 1, Join(WindowEdges(4096, {20000}), SplitEdges(20000 - 4096 + 1, 4096))}}},
        {"window_4096_edges_chunk", {{20000, 100, WindowEdges(4096, {20000, 20099})}}},
        {"x16_window_4096_chunk", {{20000, 100}}, 16}}},
  };
  return groups;
}

std::vector<AttentionGroup> LongGroups() {
  return {
      // 128K keys: decode split over KV, and a prefill chunk at the end.
      {"d64_h32_kv4_128k", 64, 32, 4, 0, 64, 8,
       {{"decode_128k", {{131071, 1}}},
        {"needles_split_edges_decode_128k", {{131071, 1, Join(TileEdges(), SplitEdges(0, 131072))}}},
        {"chunk_at_128k", {{131072 - 256, 256}}}}},
      {"d128_h32_kv8_128k", 128, 32, 8, 0, 64, 8,
       {{"decode_128k", {{131071, 1}}}, {"x16_decode_128k", {{131071, 1}}, 16}}},
      {"d128_h32_kv1_gqa_32_128k", 128, 32, 1, 0, 64, 8,
       {{"needles_split_edges_decode_128k", {{131071, 1, Join(TileEdges(), SplitEdges(0, 131072))}}}}},
      {"d64_h8_kv8_1m", 64, 8, 8, 0, 64, 8,
       {{"decode_1m", {{1 << 20, 1}}},
        {"needles_split_edges_decode_1m", {{1 << 20, 1, Join(TileEdges(), SplitEdges(0, (1 << 20) + 1))}}}}},
      // K/V element offsets past 2^31: slot * kv_dim with kv_dim 1024 and slots above 2.1M.
      {"d128_h8_kv8_index_overflow", 128, 8, 8, 0, 64, 34000,
       {{"past_2g_elements", {{4096, 100}, {4196, 1}}},
        {"needles_past_2g_elements", {{4096, 100, TileEdges()}, {4196, 1, Join(TileEdges(), SplitEdges(0, 4197))}}}}},
  };
}

std::vector<AttentionParam> For(AttentionBackend backend, const std::vector<AttentionGroup>& groups) {
  std::vector<AttentionParam> params;
  for (const auto& g : groups) params.push_back({backend, g});
  return params;
}

std::string GroupName(const ::testing::TestParamInfo<AttentionParam>& info) { return info.param.group.name; }

INSTANTIATE_TEST_SUITE_P(Own, CudaAttention, ::testing::ValuesIn(For(AttentionBackend::kOwn, ShortGroups())),
                         GroupName);
INSTANTIATE_TEST_SUITE_P(Cudnn, CudaAttention, ::testing::ValuesIn(For(AttentionBackend::kCudnn, ShortGroups())),
                         GroupName);
INSTANTIATE_TEST_SUITE_P(Own, CudaAttentionLong, ::testing::ValuesIn(For(AttentionBackend::kOwn, LongGroups())),
                         GroupName);
INSTANTIATE_TEST_SUITE_P(Cudnn, CudaAttentionLong, ::testing::ValuesIn(For(AttentionBackend::kCudnn, LongGroups())),
                         GroupName);

// The own kernels and cuDNN on the same inputs, in one step of a prefill slice and several
// decodes: each against the reference, and against each other.
TEST(CudaAttentionBackends, OwnAndCudnnAgreeOnAMixedBatch) {
  BPT_SKIP_WITHOUT_CUDA();
  const std::vector<SequenceCase> mixed = {{3000, 300}, {5000, 1}, {4099, 1}, {257, 1}, {64, 1}, {1, 1}};
  const std::vector<SequenceCase> needles = {{3000, 300, TileEdges()},
                                             {5000, 1, Join(TileEdges(), SplitEdges(0, 5001))},
                                             {4099, 1},
                                             {257, 1, SplitEdges(0, 258)},
                                             {64, 1},
                                             {1, 1}};
  const std::vector<Scenario> scenarios = {{"mixed", mixed}, {"x16_mixed", mixed, 16}, {"needles_mixed", needles}};
  for (const AttentionGroup& group : {AttentionGroup{"d64_h32_kv4", 64, 32, 4, 0, 64, 8, scenarios},
                                      AttentionGroup{"d128_h32_kv8", 128, 32, 8, 0, 64, 8, scenarios}}) {
    AttentionRig rig;
    ASSERT_NO_FATAL_FAILURE(rig.Init(group, {AttentionBackend::kOwn, AttentionBackend::kCudnn}));
    for (const Scenario& s : group.scenarios) {
      const std::string name = group.name + "_" + s.name;
      SCOPED_TRACE(name);
      std::vector<std::vector<float>> out;
      ASSERT_NO_FATAL_FAILURE(rig.Run(s, &out));
      ExpectClose(name + "_own", out[1], out[0], rig.config(), kAttentionMaxAbsTolerance);
      ExpectClose(name + "_cudnn", out[2], out[0], rig.config(), kAttentionMaxAbsTolerance);
      ExpectClose(name + "_own_vs_cudnn", out[1], out[2], rig.config(), kBackendsMaxAbsTolerance);
    }
  }
}

}  // namespace
}  // namespace bpt
