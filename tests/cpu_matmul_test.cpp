// The CPU backend's Linear and Embed (cpu_matmul.h) against naive fp64 references, through the
// backend's public ops, with every instruction-set level forced in turn and weights stored in
// fp32 and in bf16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <random>
#include <vector>

#include "bf16.h"
#include "cpu_backend.h"
#include "cpu_isa.h"
#include "cpu_matmul.h"
#include "thread_pool.h"
#include "rope.h"

namespace bpt {
namespace {

constexpr double kU = 0x1.0p-24;      // fp32's unit roundoff
constexpr double kBf16U = 0x1.0p-8;   // bf16's (8 significand bits)

struct MatmulCase {
  CpuIsa isa;
  ElementType weight_dtype;
};

std::string CaseName(const MatmulCase& c) {
  std::string name = std::string(CpuIsaName(c.isa)) + "_weights_" + ElementTypeName(c.weight_dtype);
  for (char& ch : name)
    if (ch == '-') ch = '_';
  return name;
}

ModelConfig TinyConfig() {
  ModelConfig m;
  m.architecture = "LlamaForCausalLM";
  m.num_heads = 1;
  m.num_kv_heads = 1;
  m.head_dim = 8;
  m.hidden_size = 8;
  m.num_layers = 1;
  m.max_position_embeddings = 4096;
  return m;
}

// A weight rounded as the backend rounds it (to nearest even), widened back.
double RoundedToBf16(float f) {
  const uint32_t bits = static_cast<uint32_t>(RoundToBf16(f)) << 16;
  float r;
  std::memcpy(&r, &bits, sizeof(r));
  return r;
}

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

class CpuMatmulTest : public ::testing::TestWithParam<MatmulCase> {
 protected:
  void SetUp() override {
    if (!CpuSupports(GetParam().isa)) GTEST_SKIP() << "this CPU lacks " << CpuIsaName(GetParam().isa);
    CpuOptions options;
    options.num_threads = 2;
    options.isa = GetParam().isa;
    backend_ = std::make_unique<CpuBackend>(TinyConfig(), options, GetParam().weight_dtype, ElementType::kFloat32);
  }
  bool bf16() const { return GetParam().weight_dtype == ElementType::kBFloat16; }
  // AVX512-BF16's dot products, which round x to bf16 as well, take bf16 weights and up to
  // CpuMatmul::Bf16DotMaxRows() rows.
  bool rounds_x(int64_t rows) const {
    return bf16() && GetParam().isa == CpuIsa::kAvx512Bf16 && rows <= CpuMatmul::Bf16DotMaxRows();
  }
  // A weight as the backend holds it: matrices in weight_dtype, vectors ([1, n]) in fp32.
  double Stored(float w, bool matrix = true) const { return bf16() && matrix ? RoundedToBf16(w) : w; }

  Tensor Upload(const std::vector<float>& values, int64_t rows, int64_t cols) {
    auto t = backend_->UploadWeight(HostMatrix{values, rows, cols});
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return *t;
  }
  Tensor Activation(int64_t rows, int64_t cols) {
    auto t = backend_->AllocateActivation(rows, cols, Precision::kFloat32);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return *t;
  }

  std::unique_ptr<CpuBackend> backend_;
};

// Everything a Linear check needs of the code under test.
struct LinearUnderTest {
  std::function<Tensor(const std::vector<float>& w, int64_t rows, int64_t cols)> upload;  // stored as the backend stores it
  std::function<void(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor out)> linear;
  bool bf16;               // matrices stored in bf16
  int64_t x_rounded_rows;  // Linears of up to this many rows round x to bf16 as well (0: none)
};

// |out - ref| <= bound, with ref and the bound from the stored weights in fp64: recursive fp32
// summation of in products (+ bias) errs by at most (in + 1) u * sum |x w| (u = 2^-24, to first
// order); rounding x to bf16 adds at most 2^-8 * sum |x w|.
void ExpectLinearMatchesFp64(const LinearUnderTest& u, const std::string& name) {
  struct Shape {
    int64_t rows, in, out;
  };
  const Shape shapes[] = {{1, 1, 1},     {1, 576, 1001}, {2, 7, 33},     {3, 33, 7},      {5, 1001, 576},
                          {17, 576, 577}, {17, 1, 33},    {129, 33, 1001}, {129, 576, 576}, {256, 576, 33},
                          {256, 7, 1001}, {1, 7, 1},      {3, 1001, 1},    {256, 1001, 129}, {1, 1001, 129}};
  std::mt19937 rng(5);
  double worst = 0, worst_vs_fp32 = 0;  // error / sum |x w|
  for (const Shape& s : shapes) {
    for (const bool with_bias : {false, true}) {
      SCOPED_TRACE(testing::Message() << s.rows << " x " << s.in << " -> " << s.out << (with_bias ? " + bias" : ""));
      const std::vector<float> x = Random(s.rows * s.in, rng), w = Random(s.out * s.in, rng), b = Random(s.out, rng);
      const Tensor weight = u.upload(w, s.out, s.in);
      const Tensor bias = u.upload(b, 1, s.out);
      std::vector<float> in_values = x, got(s.rows * s.out, std::nanf(""));
      u.linear(Tensor{in_values.data(), s.rows, s.in, 4}, weight, with_bias ? &bias : nullptr,
               Tensor{got.data(), s.rows, s.out, 4});
      if (::testing::Test::HasFatalFailure()) return;
      for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t n = 0; n < s.out; ++n) {
          double ref = with_bias ? b[n] : 0.0, ref_fp32 = ref, magnitude = with_bias ? std::fabs(b[n]) : 0.0;
          for (int64_t k = 0; k < s.in; ++k) {
            const double xk = x[r * s.in + k], wk = w[n * s.in + k];
            ref += xk * (u.bf16 && s.out > 1 ? RoundedToBf16(w[n * s.in + k]) : wk);
            ref_fp32 += xk * wk;
            magnitude += std::fabs(xk * wk);
          }
          const bool x_rounded = u.bf16 && s.rows <= u.x_rounded_rows && s.out > 1;
          const double bound = ((s.in + 1) * kU + (x_rounded ? kBf16U : 0.0)) * magnitude * 1.01;
          const double err = std::fabs(got[r * s.out + n] - ref);
          ASSERT_LE(err, bound) << "row " << r << " output " << n << ": " << got[r * s.out + n] << " vs " << ref;
          worst = std::max(worst, err / magnitude);
          worst_vs_fp32 = std::max(worst_vs_fp32, std::fabs(got[r * s.out + n] - ref_fp32) / magnitude);
        }
    }
  }
  // Against the unrounded weights bf16 storage adds at most 2^-8 * sum |x w|, and as much again
  // where x is rounded too.
  EXPECT_LE(worst_vs_fp32, ((u.bf16 ? kBf16U : 0.0) + (u.x_rounded_rows > 0 ? kBf16U : 0.0) + 1002 * kU) * 1.01);
  std::printf("[ measured ] %s: max |error| / sum |x w|: %.3g against the stored weights, %.3g against fp32\n",
              name.c_str(), worst, worst_vs_fp32);
}

TEST_P(CpuMatmulTest, LinearMatchesFp64) {
  LinearUnderTest u;
  u.upload = [this](const std::vector<float>& w, int64_t rows, int64_t cols) { return Upload(w, rows, cols); };
  u.linear = [this](const Tensor& x, const Tensor& w, const Tensor* bias, Tensor out) {
    ASSERT_TRUE(backend_->Linear(x, w, bias, out).ok());
  };
  u.bf16 = bf16();
  u.x_rounded_rows = rounds_x(1) ? CpuMatmul::Bf16DotMaxRows() : 0;
  ExpectLinearMatchesFp64(u, CaseName(GetParam()));
}

// AVX512-BF16's dot products on one row (where vdpbf16ps is slower than FMA) and on every row
// (where it is faster: CpuBf16DotOutpacesFma), whichever this CPU gets by default.
TEST(CpuMatmulBf16DotTest, LinearMatchesFp64OnOneRowAndOnEveryRow) {
  if (!CpuSupports(CpuIsa::kAvx512Bf16)) GTEST_SKIP() << "this CPU lacks avx512-bf16";
  ThreadPool pool(2);
  for (const int64_t max_rows : {int64_t{1}, INT64_MAX}) {
    CpuMatmul matmul(CpuIsa::kAvx512Bf16, ElementType::kBFloat16, max_rows);
    std::deque<std::vector<float>> vectors;  // the [1, n] weights, kept as the backend keeps them
    LinearUnderTest u;
    u.upload = [&](const std::vector<float>& w, int64_t rows, int64_t cols) {
      if (rows > 1) {
        auto packed = matmul.Pack(HostMatrix{w, rows, cols});
        EXPECT_TRUE(packed.ok()) << packed.status().ToString();
        return packed.ok() ? *packed : Tensor{};
      }
      vectors.push_back(w);
      return Tensor{vectors.back().data(), rows, cols, 4};
    };
    u.linear = [&](const Tensor& x, const Tensor& w, const Tensor* bias, Tensor out) {
      matmul.Linear(x, w, bias != nullptr ? static_cast<const float*>(bias->data) : nullptr, out, pool);
    };
    u.bf16 = true;
    u.x_rounded_rows = max_rows;
    ExpectLinearMatchesFp64(u, max_rows == 1 ? "bf16_dot_one_row" : "bf16_dot_every_row");
  }
}

// Rows of a packed table exactly (bf16 rows widened exactly), and the same table serving as a
// tied lm_head's weight.
TEST_P(CpuMatmulTest, EmbedReadsTheTableAndTiedLinearToo) {
  const int64_t vocab = 1001, hidden = 33, n = 17;
  std::mt19937 rng(9);
  const std::vector<float> table_values = Random(vocab * hidden, rng);
  const Tensor table = Upload(table_values, vocab, hidden);
  const ModelConfig config = TinyConfig();
  KvBlockManager blocks(8, 4);
  BlockTable block_table;
  ASSERT_TRUE(blocks.Reserve(&block_table, n).ok());
  ASSERT_TRUE(backend_->AllocateKvPool(1, blocks.num_blocks(), 4, config.num_kv_heads * config.head_dim).ok());
  StepLayout step;
  for (int64_t t = 0; t < n; ++t) step.token_ids.push_back(static_cast<int32_t>(t == 0 ? 0 : t == 1 ? vocab - 1 : rng() % vocab));
  step.sequences.push_back({0, static_cast<int32_t>(n), &block_table, true});
  ASSERT_TRUE(backend_->BeginStep(step, Rope(config)).ok());
  Tensor embedded = Activation(n, hidden);
  ASSERT_TRUE(backend_->Embed(table, embedded).ok());
  const float* e = static_cast<const float*>(embedded.data);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t k = 0; k < hidden; ++k)
      ASSERT_EQ(e[t * hidden + k], Stored(table_values[step.token_ids[t] * hidden + k])) << "token " << t << " col " << k;

  Tensor logits = Activation(n, vocab);
  ASSERT_TRUE(backend_->Linear(embedded, table, nullptr, logits).ok());
  const float* l = static_cast<const float*>(logits.data);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t v = 0; v < vocab; ++v) {
      double ref = 0, magnitude = 0;
      for (int64_t k = 0; k < hidden; ++k) {
        const double p = static_cast<double>(e[t * hidden + k]) * Stored(table_values[v * hidden + k]);
        ref += p;
        magnitude += std::fabs(p);
      }
      ASSERT_LE(std::fabs(l[t * vocab + v] - ref), ((hidden + 1) * kU + (rounds_x(n) ? kBf16U : 0.0)) * magnitude * 1.01)
          << "token " << t << " logit " << v;
    }
}

TEST_P(CpuMatmulTest, WeightBytesAreTheStoredOnes) {
  const int64_t before = backend_->WeightBytes();
  Upload(std::vector<float>(128 * 64, 1.0f), 128, 64);  // whole panels at every level
  Upload(std::vector<float>(64, 1.0f), 1, 64);          // a vector: fp32
  EXPECT_EQ(backend_->WeightBytes() - before, 128 * 64 * (bf16() ? 2 : 4) + 64 * 4);
}

std::vector<MatmulCase> AllCases() {
  std::vector<MatmulCase> cases;
  for (const CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16})
    for (const ElementType dtype : {ElementType::kFloat32, ElementType::kBFloat16}) cases.push_back({isa, dtype});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Levels, CpuMatmulTest, ::testing::ValuesIn(AllCases()),
                         [](const auto& info) { return CaseName(info.param); });

}  // namespace
}  // namespace bpt
