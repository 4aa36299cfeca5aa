// Blockwise attention (the CPU backend's RoPE, KV append and tiled online-softmax attention,
// reading keys through a shuffled block table) against naive exact attention in fp64.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "cpu_backend.h"
#include "cpu_isa.h"
#include "rope.h"

namespace bpt {
namespace {

struct AttentionCase {
  const char* name;
  int64_t start;       // position of the first query; keys before it are filled without queries
  int64_t length;      // queries checked
  int prefill_block;   // tokens per step
  AttentionTiling tiling;
  int num_heads, num_kv_heads, head_dim;
  const char* rope;    // rope_scaling type
  int kv_block_size;
  int64_t sliding_window;
};

// A reproducible value for (position, column) in [-1, 1).
double Value(int64_t pos, int64_t col, uint64_t salt) {
  uint64_t z = static_cast<uint64_t>(pos) * 0x9e3779b97f4a7c15ULL ^ (static_cast<uint64_t>(col) + salt) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 31)) * 0x94d049bb133111ebULL;
  z ^= z >> 29;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
}

ModelConfig ConfigFor(const AttentionCase& c) {
  ModelConfig m;
  m.architecture = "LlamaForCausalLM";
  m.num_heads = c.num_heads;
  m.num_kv_heads = c.num_kv_heads;
  m.head_dim = c.head_dim;
  m.hidden_size = c.num_heads * c.head_dim;
  m.num_layers = 1;
  m.sliding_window = c.sliding_window;
  m.max_position_embeddings = 4096;
  const std::string rope = c.rope;
  RopeScaling& s = m.rope_scaling;
  if (rope == "linear") { s.type = RopeScalingType::kLinear; s.factor = 4; }
  if (rope == "dynamic") { s.type = RopeScalingType::kDynamic; s.factor = 8; }
  if (rope == "llama3") { s.type = RopeScalingType::kLlama3; s.factor = 8; s.low_freq_factor = 1; s.high_freq_factor = 4; s.original_max_position_embeddings = 1024; }
  if (rope == "yarn") { s.type = RopeScalingType::kYarn; s.factor = 16; s.original_max_position_embeddings = 1024; }
  return m;
}

// Relative to the largest |output|. fp32 KV: fp32 dot products and accumulation over up to ~66K
// keys against exact fp64. bf16 KV: keys and values rounded to 8 significant bits (relative
// error <= 2^-8 each), widened exactly and accumulated in fp32 on every level (measured 2.1e-3).
double Tolerance(ElementType kv_dtype) { return kv_dtype == ElementType::kFloat32 ? 2e-5 : 5e-3; }

// A step's q, k and v rows for positions [first_pos, first_pos + rows): Value(pos, column, salt).
void FillRows(Tensor t, int64_t first_pos, uint64_t salt) {
  float* p = static_cast<float*>(t.data);
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t col = 0; col < t.cols; ++col) p[r * t.cols + col] = static_cast<float>(Value(first_pos + r, col, salt));
}

// Exact causal (or sliding-window) attention in fp64 over one sequence whose q, k and v at every
// position are FillRows(..., salt), RoPE angles included.
class NaiveAttention {
 public:
  NaiveAttention(const AttentionCase& c, const Rope& rope, uint64_t salt, int64_t total)
      : c_(c), rope_(rope), salt_(salt), d_(c.head_dim), q_cols_(c.num_heads * d_), kv_cols_(c.num_kv_heads * d_),
        keys_(total * kv_cols_) {
    for (int64_t j = 0; j < total; ++j)
      for (int g = 0; g < c.num_kv_heads; ++g) {
        const auto k = Rotated(j, q_cols_ + g * d_);
        std::copy(k.begin(), k.end(), keys_.begin() + j * kv_cols_ + g * d_);
      }
  }

  // Compares the output row of the query at position p ([num_heads * head_dim]) with the exact one.
  void Compare(int64_t p, const float* got, double* max_ref, double* max_err) const {
    const int group = c_.num_heads / c_.num_kv_heads;
    const int64_t lo = c_.sliding_window > 0 ? std::max<int64_t>(0, p - c_.sliding_window + 1) : 0;
    std::vector<double> scores(p - lo + 1);
    for (int h = 0; h < c_.num_heads; ++h) {
      const int g = h / group;
      const auto q = Rotated(p, h * d_);
      double mx = -1e300;
      for (int64_t j = lo; j <= p; ++j) {
        double s = 0;
        for (int i = 0; i < d_; ++i) s += q[i] * keys_[j * kv_cols_ + g * d_ + i];
        scores[j - lo] = s / std::sqrt(static_cast<double>(d_));
        mx = std::max(mx, scores[j - lo]);
      }
      double z = 0;
      for (double& s : scores) z += (s = std::exp(s - mx));
      for (int i = 0; i < d_; ++i) {
        double o = 0;
        for (int64_t j = lo; j <= p; ++j) o += scores[j - lo] * Value(j, q_cols_ + kv_cols_ + g * d_ + i, salt_);
        o /= z;
        const double e = std::fabs(o - got[h * d_ + i]);
        *max_ref = std::max(*max_ref, std::fabs(o));
        *max_err = std::isnan(e) ? INFINITY : std::max(*max_err, e);
      }
    }
  }

 private:
  std::vector<double> Rotated(int64_t pos, int col0) const {
    const auto& inv_freq = rope_.inv_freq();
    const double af = rope_.attention_factor();
    std::vector<double> v(d_);
    for (int i = 0; i < d_ / 2; ++i) {
      const double a = Value(pos, col0 + i, salt_), b = Value(pos, col0 + i + d_ / 2, salt_);
      const double cs = std::cos(pos * inv_freq[i]) * af, sn = std::sin(pos * inv_freq[i]) * af;
      v[i] = a * cs - b * sn;
      v[i + d_ / 2] = b * cs + a * sn;
    }
    return v;
  }

  const AttentionCase& c_;
  const Rope& rope_;
  uint64_t salt_;
  int d_, q_cols_, kv_cols_;
  std::vector<double> keys_;  // [total, num_kv_heads * head_dim]: rotated keys of every position
};

// Each case runs on every kernel level the CPU has (cpu_isa.h), with the KV cache in fp32 and bf16.
using AttentionParam = std::tuple<AttentionCase, CpuIsa, ElementType>;

class AttentionTest : public ::testing::TestWithParam<AttentionParam> {};
class MultiSequenceAttentionTest : public ::testing::TestWithParam<std::tuple<CpuIsa, ElementType>> {};

std::string ParamName(const ::testing::TestParamInfo<AttentionParam>& info) {
  std::string name = std::string(std::get<0>(info.param).name) + "_" + CpuIsaName(std::get<1>(info.param)) + "_kv_" +
                     ElementTypeName(std::get<2>(info.param));
  for (char& ch : name)
    if (ch == '-') ch = '_';
  return name;
}

TEST_P(AttentionTest, MatchesNaiveFp64) {
  const auto& [c, isa, kv_dtype] = GetParam();
  if (!CpuSupports(isa)) GTEST_SKIP() << "this CPU lacks " << CpuIsaName(isa);
  const ModelConfig config = ConfigFor(c);
  const int d = c.head_dim, q_cols = c.num_heads * d, kv_cols = c.num_kv_heads * d;
  const int cols = q_cols + 2 * kv_cols;
  const int64_t total = c.start + c.length;

  CpuOptions options;
  options.num_threads = 2;
  options.attention_tiling = c.tiling;
  options.isa = isa;
  CpuBackend backend(config, options, ElementType::kFloat32, kv_dtype);
  const Rope rope(config);
  KvBlockManager blocks((total + c.kv_block_size - 1) / c.kv_block_size + 3, c.kv_block_size);
  blocks.ShuffleFreeBlocks(11);
  BlockTable table;
  ASSERT_TRUE(blocks.Reserve(&table, total).ok());
  ASSERT_TRUE(backend.AllocateKvPool(1, blocks.num_blocks(), c.kv_block_size, kv_cols).ok());
  const AttentionShape shape{c.num_heads, c.num_kv_heads, d, c.sliding_window};

  const int64_t chunk = std::max<int64_t>(c.prefill_block, 4096);
  auto qkv_or = backend.AllocateActivation(chunk, cols, Precision::kFloat32);
  auto out_or = backend.AllocateActivation(c.prefill_block, q_cols, Precision::kFloat32);
  ASSERT_TRUE(qkv_or.ok() && out_or.ok());
  Tensor qkv_buf = *qkv_or, out_buf = *out_or;
  auto fill = [&](Tensor t, int64_t first_pos) { FillRows(t, first_pos, /*salt=*/0); };

  // Keys before the checked queries: appended in large steps, no attention.
  for (int64_t pos = 0; pos < c.start; pos += chunk) {
    const int32_t n = static_cast<int32_t>(std::min(chunk, c.start - pos));
    StepLayout step;
    step.token_ids.assign(n, 0);
    step.sequences.push_back({pos, n, &table, false});
    ASSERT_TRUE(backend.BeginStep(step, rope).ok());
    Tensor qkv = qkv_buf.Rows(0, n);
    fill(qkv, pos);
    ASSERT_TRUE(backend.ApplyRope(qkv, shape).ok());
    ASSERT_TRUE(backend.AppendKv(0, qkv, shape).ok());
  }
  // The checked queries, one prefill block per step, exactly as the model runner does it.
  std::vector<float> got(c.length * q_cols, std::nanf(""));
  for (int64_t pos = c.start; pos < total; pos += c.prefill_block) {
    const int32_t n = static_cast<int32_t>(std::min<int64_t>(c.prefill_block, total - pos));
    StepLayout step;
    step.token_ids.assign(n, 0);
    step.sequences.push_back({pos, n, &table, true});
    ASSERT_TRUE(backend.BeginStep(step, rope).ok());
    Tensor qkv = qkv_buf.Rows(0, n), out = out_buf.Rows(0, n);
    fill(qkv, pos);
    std::fill_n(static_cast<float*>(out.data), n * q_cols, std::nanf(""));
    ASSERT_TRUE(backend.ApplyRope(qkv, shape).ok());
    ASSERT_TRUE(backend.AppendKv(0, qkv, shape).ok());
    ASSERT_TRUE(backend.Attention(0, qkv, shape, out).ok());
    std::copy_n(static_cast<float*>(out.data), n * q_cols, got.begin() + (pos - c.start) * q_cols);
  }

  const NaiveAttention reference(c, rope, /*salt=*/0, total);
  double max_ref = 0, max_err = 0;
  for (int64_t t = 0; t < c.length; ++t) reference.Compare(c.start + t, &got[t * q_cols], &max_ref, &max_err);
  EXPECT_LE(max_err, Tolerance(kv_dtype) * max_ref) << "max |error| " << max_err << ", max |ref| " << max_ref;
  RecordProperty("max_relative_error", std::to_string(max_err / max_ref));
}

constexpr AttentionTiling kSmallTiles{4, 8};
constexpr AttentionTiling kDefaultTiles{};  // what the engine runs
constexpr AttentionTiling kQueryTile16{16, 128};
constexpr AttentionTiling kOddTiles{5, 7};

constexpr CpuIsa kLevels[] = {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16};
constexpr ElementType kKvTypes[] = {ElementType::kFloat32, ElementType::kBFloat16};

INSTANTIATE_TEST_SUITE_P(
    Lengths, AttentionTest,
    ::testing::Combine(::testing::Values(
        AttentionCase{"len1", 0, 1, 16, kDefaultTiles, 4, 4, 16, "default", 16, 0},
        AttentionCase{"lenBm1", 0, 15, 16, kSmallTiles, 4, 4, 16, "default", 16, 0},
        AttentionCase{"lenB", 0, 16, 16, kOddTiles, 8, 2, 16, "default", 16, 0},
        AttentionCase{"lenBp1", 0, 17, 16, kSmallTiles, 8, 2, 16, "default", 4, 0},
        AttentionCase{"len3Bp7", 0, 55, 16, kOddTiles, 8, 1, 16, "default", 3, 0},
        AttentionCase{"len3Bp7_default_tiles", 0, 55, 16, kDefaultTiles, 8, 1, 16, "default", 16, 0},
        AttentionCase{"long_prompt", 0, 700, 128, kDefaultTiles, 8, 2, 64, "default", 64, 0},
        AttentionCase{"long_prompt_query_tile16", 0, 700, 128, kQueryTile16, 8, 2, 64, "default", 64, 0},
        AttentionCase{"gqa1_hd128", 0, 40, 16, kOddTiles, 2, 2, 128, "default", 16, 0},
        AttentionCase{"gqa4_hd64", 0, 40, 16, kSmallTiles, 8, 2, 64, "default", 16, 0},
        AttentionCase{"gqa8_hd64", 0, 40, 16, kDefaultTiles, 8, 1, 64, "default", 16, 0},
        AttentionCase{"gqa3_hd64_smollm2", 0, 300, 128, kDefaultTiles, 9, 3, 64, "default", 64, 0},
        AttentionCase{"gqa3_hd12_tails", 0, 77, 32, kOddTiles, 6, 2, 12, "default", 5, 0},
        AttentionCase{"sliding_window", 0, 90, 16, kOddTiles, 4, 2, 16, "default", 8, 20},
        AttentionCase{"sliding_window_gqa3", 0, 200, 64, kDefaultTiles, 9, 3, 64, "default", 16, 37},
        // Decode steps, whose few items are split over the keys (CpuAttention) and merged.
        AttentionCase{"decode_gqa3", 1500, 3, 1, kDefaultTiles, 9, 3, 64, "default", 16, 0},
        AttentionCase{"decode_gqa8_odd_tiles", 301, 2, 1, kOddTiles, 8, 1, 32, "default", 7, 0},
        AttentionCase{"decode_sliding_window", 400, 3, 1, kSmallTiles, 4, 2, 16, "default", 8, 50},
        // One item of 6 tokens per step, split into shares of 3 tiles of 8 keys: some shares
        // start after some of the item's rows, which see none of their keys; the windowed case
        // also has shares wholly behind some rows' windows.
        AttentionCase{"split_rows_past_share", 64, 64, 6, AttentionTiling{6, 8}, 4, 1, 16, "default", 8, 0},
        AttentionCase{"split_rows_past_share_window", 64, 64, 6, AttentionTiling{6, 8}, 4, 1, 16, "default", 8, 20}),
                       ::testing::ValuesIn(kLevels), ::testing::ValuesIn(kKvTypes)),
    ParamName);

// 55 queries against 65K+ keys on every level and KV dtype; past 64K, RoPE angles computed in
// fp32 would be off by ~1e-2 rad.
INSTANTIATE_TEST_SUITE_P(
    LongContext, AttentionTest,
    ::testing::Combine(::testing::Values(AttentionCase{"default", 65541, 55, 16, kOddTiles, 8, 1, 32, "default", 64, 0}),
                       ::testing::ValuesIn(kLevels), ::testing::ValuesIn(kKvTypes)),
    ParamName);

// The RoPE scalings past 64K: their angles, not the kernels, so on this CPU's own level.
INSTANTIATE_TEST_SUITE_P(
    BeyondPosition64K, AttentionTest,
    ::testing::Combine(::testing::Values(
        AttentionCase{"linear", 65541, 17, 16, kDefaultTiles, 4, 1, 32, "linear", 64, 0},
        AttentionCase{"dynamic", 65541, 17, 16, kSmallTiles, 4, 1, 32, "dynamic", 64, 0},
        AttentionCase{"llama3", 65541, 17, 16, kDefaultTiles, 4, 1, 32, "llama3", 64, 0},
        AttentionCase{"yarn", 65541, 17, 16, kOddTiles, 4, 1, 32, "yarn", 64, 0}),
                       ::testing::Values(DetectCpuIsa()), ::testing::Values(ElementType::kFloat32)),
    ParamName);

// One step holding a decode token, a prefill block and a few tokens of three sequences (each
// with its own block table), then a step of two decode tokens (the longer one split over its
// keys), at the engine's default tiling, on every level and KV dtype.
TEST_P(MultiSequenceAttentionTest, MatchesNaiveFp64) {
  const auto& [isa, kv_dtype] = GetParam();
  if (!CpuSupports(isa)) GTEST_SKIP() << "this CPU lacks " << CpuIsaName(isa);
  const AttentionCase c{"multi", 0, 0, 0, kDefaultTiles, 9, 3, 64, "default", 16, 0};
  const ModelConfig config = ConfigFor(c);
  const int d = c.head_dim, q_cols = c.num_heads * d, kv_cols = c.num_kv_heads * d, cols = q_cols + 2 * kv_cols;
  struct Sequence {
    int64_t cached;                    // keys appended before the checked steps
    std::vector<int32_t> step_tokens;  // tokens in each checked step (0: not in it)
    BlockTable table;
  };
  std::vector<Sequence> seqs = {{600, {1, 1}, {}}, {0, {45, 0}, {}}, {130, {7, 1}, {}}};
  CpuOptions options;
  options.num_threads = 2;
  options.isa = isa;
  CpuBackend backend(config, options, ElementType::kFloat32, kv_dtype);
  const Rope rope(config);
  KvBlockManager blocks(200, c.kv_block_size);
  blocks.ShuffleFreeBlocks(5);
  for (auto& seq : seqs) ASSERT_TRUE(blocks.Reserve(&seq.table, seq.cached + 2 + 45).ok());
  ASSERT_TRUE(backend.AllocateKvPool(1, blocks.num_blocks(), c.kv_block_size, kv_cols).ok());
  const AttentionShape shape{c.num_heads, c.num_kv_heads, d, 0};
  auto qkv_or = backend.AllocateActivation(600, cols, Precision::kFloat32);
  auto out_or = backend.AllocateActivation(64, q_cols, Precision::kFloat32);
  ASSERT_TRUE(qkv_or.ok() && out_or.ok());

  // One step over `slices` (sequence, tokens), each sequence's rows filled with its own salt;
  // with attend, the attention output of the step.
  auto run_step = [&](const std::vector<std::pair<size_t, int32_t>>& slices, std::vector<int64_t>* start,
                      bool attend) -> Tensor {
    StepLayout step;
    int64_t rows = 0;
    for (const auto& [i, n] : slices) {
      step.sequences.push_back({(*start)[i], n, &seqs[i].table, attend});
      rows += n;
    }
    step.token_ids.assign(rows, 0);
    EXPECT_TRUE(backend.BeginStep(step, rope).ok());
    Tensor qkv = qkv_or->Rows(0, rows), out = attend ? out_or->Rows(0, rows) : Tensor{};
    int64_t row = 0;
    for (const auto& [i, n] : slices) {
      FillRows(qkv.Rows(row, n), (*start)[i], /*salt=*/i + 1);
      row += n;
    }
    EXPECT_TRUE(backend.ApplyRope(qkv, shape).ok());
    EXPECT_TRUE(backend.AppendKv(0, qkv, shape).ok());
    if (attend) {
      std::fill_n(static_cast<float*>(out.data), rows * q_cols, std::nanf(""));
      EXPECT_TRUE(backend.Attention(0, qkv, shape, out).ok());
    }
    for (const auto& [i, n] : slices) (*start)[i] += n;
    return out;
  };
  std::vector<int64_t> next(seqs.size(), 0);
  for (size_t i = 0; i < seqs.size(); ++i)
    if (seqs[i].cached > 0) run_step({{i, static_cast<int32_t>(seqs[i].cached)}}, &next, false);
  double max_ref = 0, max_err = 0;
  for (int s = 0; s < 2; ++s) {
    std::vector<std::pair<size_t, int32_t>> slices;
    for (size_t i = 0; i < seqs.size(); ++i)
      if (seqs[i].step_tokens[s] > 0) slices.push_back({i, seqs[i].step_tokens[s]});
    const std::vector<int64_t> first = next;
    const Tensor out = run_step(slices, &next, true);
    int64_t row = 0;
    for (const auto& [i, n] : slices) {
      const NaiveAttention reference(c, rope, /*salt=*/i + 1, next[i]);
      for (int32_t t = 0; t < n; ++t)
        reference.Compare(first[i] + t, static_cast<const float*>(out.data) + (row + t) * q_cols, &max_ref, &max_err);
      row += n;
    }
  }
  EXPECT_LE(max_err, Tolerance(kv_dtype) * max_ref) << "max |error| " << max_err << ", max |ref| " << max_ref;
}

INSTANTIATE_TEST_SUITE_P(Levels, MultiSequenceAttentionTest,
                         ::testing::Combine(::testing::ValuesIn(kLevels), ::testing::ValuesIn(kKvTypes)),
                         [](const ::testing::TestParamInfo<std::tuple<CpuIsa, ElementType>>& info) {
                           std::string name = std::string(CpuIsaName(std::get<0>(info.param))) + "_kv_" +
                                              ElementTypeName(std::get<1>(info.param));
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace bpt
