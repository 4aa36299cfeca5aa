// The CPU backend's vectorised elementwise ops (cpu_elementwise.h) against fp64, through the
// backend's public ops, with every instruction-set level forced in turn.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cpu_backend.h"
#include "cpu_isa.h"

namespace bpt {
namespace {

class CpuElementwiseTest : public ::testing::TestWithParam<CpuIsa> {};

// Exp within 2 ulp, then an add, a divide and a multiply each within half an ulp: 4 ulp of the
// result (5e-7 relative) bounds the error; below -87, where exp(-g) is clamped to e^88, silu(g)
// times up is |g up| / e^88 at most, under 1e-35 here.
TEST_P(CpuElementwiseTest, SwiGluMatchesFp64) {
  if (!CpuSupports(GetParam())) GTEST_SKIP() << "this CPU lacks " << CpuIsaName(GetParam());
  ModelConfig config;
  config.num_heads = config.num_kv_heads = 1;
  config.head_dim = config.hidden_size = 8;
  CpuOptions options;
  options.num_threads = 2;
  options.isa = GetParam();
  CpuBackend backend(config, options, ElementType::kFloat32, ElementType::kFloat32);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> gates(-12.0f, 12.0f), ups(-2.0f, 2.0f);
  for (const int64_t rows : {1, 3, 17}) {
    for (const int64_t ffn : {1, 7, 33, 1537}) {
      SCOPED_TRACE(testing::Message() << rows << " x " << ffn);
      auto gate_up = backend.AllocateActivation(rows, 2 * ffn, Precision::kFloat32);
      auto out = backend.AllocateActivation(rows, ffn, Precision::kFloat32);
      ASSERT_TRUE(gate_up.ok() && out.ok());
      float* gu = static_cast<float*>(gate_up->data);
      for (int64_t i = 0; i < rows * 2 * ffn; ++i) gu[i] = (i % ffn) % 2 == 0 ? gates(rng) : ups(rng);
      const float extremes[] = {0.0f, -0.0f, 87.5f, -87.5f, 100.0f, -100.0f, 30.0f, -30.0f};
      for (int64_t i = 0; i < 8 && i < ffn; ++i) gu[i] = extremes[i];
      ASSERT_TRUE(backend.SwiGlu(*gate_up, *out).ok());
      const float* o = static_cast<const float*>(out->data);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < ffn; ++i) {
          const double g = gu[r * 2 * ffn + i], u = gu[r * 2 * ffn + ffn + i];
          const double ref = g / (1.0 + std::exp(-g)) * u;
          ASSERT_NEAR(o[r * ffn + i], ref, 5e-7 * std::fabs(ref) + 1e-35) << "row " << r << " col " << i << " gate " << g;
        }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, CpuElementwiseTest,
                         ::testing::Values(CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16),
                         [](const auto& info) {
                           std::string name = CpuIsaName(info.param);
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace bpt
