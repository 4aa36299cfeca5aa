// Whole-model logits against tests/reference/llama_reference.py: an fp64 numpy implementation
// of the HF modeling equations that shares no code with the engine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <tuple>

#include "engine.h"
#include "rope.h"
#include "test_models.h"

namespace bpt {
namespace {

using nlohmann::json;
using testing::SmallConfig;
using testing::TempDir;

struct ReferenceCase {
  const char* name;
  json overrides;
  DType dtype;
  int shards;
  int prompt_length;
};

// The reference's logits after `prompt` for the model in dir/model, positions placed as the
// engine's rope_position_gap places them.
std::vector<double> ReferenceLogits(const TempDir& dir, const std::vector<int32_t>& prompt, RopePositionGap gap) {
  std::ofstream(dir / "tokens.json") << json(prompt).dump();
  const std::string command = std::string(BPTSERVE_PYTHON) + " " + BPTSERVE_REFERENCE_SCRIPT + " --position-gap " +
                              std::to_string(gap.start) + " " + std::to_string(gap.length) + " " + (dir / "model") +
                              " " + (dir / "tokens.json") + " " + (dir / "ref.json");
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(dir / "ref.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str()).get<std::vector<double>>();
}

// tolerance: of the largest logit.
void ExpectMatchesReference(const std::vector<double>& ref, const std::vector<float>& logits, double tolerance) {
  ASSERT_EQ(ref.size(), logits.size());
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    max_diff = std::max(max_diff, std::fabs(ref[i] - logits[i]));
  }
  ASSERT_GT(max_ref, 0.1) << "degenerate logits prove nothing";
  EXPECT_LE(max_diff, tolerance * max_ref) << "max |dlogit| " << max_diff << ", max |logit| " << max_ref;
  char relative[32];
  std::snprintf(relative, sizeof(relative), "%.2e", max_diff / max_ref);
  ::testing::Test::RecordProperty("max_relative_error", relative);
}

std::vector<int32_t> RandomPrompt(int length, const json& config) {
  std::mt19937 rng(7);
  std::vector<int32_t> prompt(length);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % config["vocab_size"].get<int>());
  return prompt;
}

// Small KV blocks handed out shuffled and odd attention tiles, so that the prompt spans several
// blocks, tiles and prefill steps.
EngineOptions TestOptions(const TempDir& dir) {
  EngineOptions options;
  options.model_dir = dir / "model";
  options.scheduler.prefill_block = 8;
  options.kv_cache.block_size = 4;
  options.kv_cache.shuffle_blocks = true;
  options.cpu.attention_tiling = {3, 5};
  return options;
}

// SmallConfig with `overrides` merged in, written with seed 42 to dir/model; returns the config.
json WriteTestModel(const TempDir& dir, const json& overrides, DType dtype, int shards = 1) {
  json config = SmallConfig();
  config.merge_patch(overrides);
  testing::WriteModelOrDie(dir / "model", config, dtype, /*seed=*/42, shards);
  return config;
}

class ReferenceLogitsTest : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(ReferenceLogitsTest, MatchesFp64Reference) {
  const ReferenceCase& c = GetParam();
  TempDir dir;
  const json config = WriteTestModel(dir, c.overrides, c.dtype, c.shards);
  auto engine = Engine::Create(TestOptions(dir));
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const std::vector<int32_t> prompt = RandomPrompt(c.prompt_length, config);
  auto logits = (*engine)->PromptLogits(prompt);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  ExpectMatchesReference(ReferenceLogits(dir, prompt, {}), *logits, 1e-4);

  // The RoPE frequencies themselves, which short prompts exercise only weakly.
  const std::string rope_command = std::string(BPTSERVE_PYTHON) + " " + BPTSERVE_REFERENCE_SCRIPT + " --rope " +
                                   (dir / "model") + " " + (dir / "rope.json");
  ASSERT_EQ(std::system(rope_command.c_str()), 0) << rope_command;
  std::ifstream rope_in(dir / "rope.json");
  std::stringstream rope_text;
  rope_text << rope_in.rdbuf();
  const json rope_ref = json::parse(rope_text.str());
  auto config_or = LoadModelConfig(dir / "model");
  ASSERT_TRUE(config_or.ok());
  const Rope rope(*config_or);
  const auto ref_freq = rope_ref["inv_freq"].get<std::vector<double>>();
  ASSERT_EQ(ref_freq.size(), rope.inv_freq().size());
  for (size_t i = 0; i < ref_freq.size(); ++i)
    EXPECT_NEAR(rope.inv_freq()[i], ref_freq[i], 1e-12 * ref_freq[i]) << "inv_freq[" << i << "]";
  EXPECT_NEAR(rope.attention_factor(), rope_ref["attention_factor"].get<double>(), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Models, ReferenceLogitsTest,
    ::testing::Values(
        ReferenceCase{"mha_untied_f32", {{"num_key_value_heads", 4}}, DType::kF32, 1, 37},
        ReferenceCase{"gqa_tied_bf16", {{"tie_word_embeddings", true}}, DType::kBF16, 1, 37},
        ReferenceCase{"mqa_f16_sharded", {{"num_key_value_heads", 1}}, DType::kF16, 3, 29},
        ReferenceCase{"qwen2_qkv_bias",
                      {{"architectures", {"Qwen2ForCausalLM"}}, {"rope_theta", 1000000.0}}, DType::kBF16, 1, 37},
        ReferenceCase{"llama_attention_bias", {{"attention_bias", true}}, DType::kF32, 1, 21},
        ReferenceCase{"mistral_sliding_window",
                      {{"architectures", {"MistralForCausalLM"}}, {"sliding_window", 8}}, DType::kBF16, 1, 37},
        ReferenceCase{"head_dim_from_hidden", {{"head_dim", nullptr}, {"num_attention_heads", 6}, {"num_key_value_heads", 3}},
                      DType::kF32, 1, 37},
        ReferenceCase{"rope_linear", {{"rope_scaling", {{"rope_type", "linear"}, {"factor", 4.0}}}}, DType::kF32, 1, 150},
        ReferenceCase{"rope_dynamic",
                      {{"max_position_embeddings", 16}, {"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}}},
                      DType::kF32, 1, 15},
        ReferenceCase{"rope_llama3",
                      {{"rope_theta", 500000.0},
                       {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}}}},
                      DType::kBF16, 1, 150},
        ReferenceCase{"rope_yarn",
                      {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}}}},
                      DType::kF32, 1, 150},
        // transformers 5's form of the same RoPE: theta and scaling inside rope_parameters (null
        // removes the base config's top-level rope_theta, as a 5.x config has none).
        ReferenceCase{"rope_parameters_llama3",
                      {{"rope_theta", nullptr},
                       {"rope_parameters", {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                                            {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                            {"original_max_position_embeddings", 64}}}},
                      DType::kF32, 1, 150},
        ReferenceCase{"rope_parameters_yarn",
                      {{"rope_theta", nullptr},
                       {"rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 1000000.0}, {"factor", 4.0},
                                            {"original_max_position_embeddings", 64}}}},
                      DType::kF32, 1, 150},
        ReferenceCase{"rope_yarn_mscale",
                      {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 8.0}, {"mscale", 0.707}, {"mscale_all_dim", 1.0},
                                         {"beta_fast", 16}, {"original_max_position_embeddings", 64}}}},
                      DType::kF32, 1, 37}),
    [](const auto& info) { return std::string(info.param.name); });

// bf16 storage (--weight-dtype bf16, --kv-dtype bf16, both): weight matrices and cached keys
// and values rounded to nearest even, and on the AVX512-BF16 level the activations the bf16 dot
// products meet too (a lone row's on Intel, every row's on AMD: CpuMatmul::Bf16DotMaxRows),
// everything accumulated in fp32. The logits stay within 1e-2 of the largest (measured with
// every row rounded, on a Zen 5 EPYC: weights 1.9e-3 to 6.8e-3, KV 3.2e-4 to 1.6e-3, both
// 2.7e-3 to 7.0e-3; one row rounded, on a Xeon: weights 9.5e-4 to 4.0e-3, both 1.7e-3 to
// 6.0e-3; against fp32's tolerance of 1e-4) and the greedy token is the reference's.
struct StorageMode {
  const char* name;
  ElementType weight_dtype;
  ElementType kv_dtype;
};

class Bf16StorageReferenceTest : public ::testing::TestWithParam<std::tuple<ReferenceCase, StorageMode>> {};

TEST_P(Bf16StorageReferenceTest, MatchesFp64ReferenceAndItsGreedyToken) {
  const auto& [c, mode] = GetParam();
  TempDir dir;
  const json config = WriteTestModel(dir, c.overrides, c.dtype, c.shards);
  EngineOptions options = TestOptions(dir);
  options.weight_dtype = mode.weight_dtype;
  options.kv_dtype = mode.kv_dtype;
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  ASSERT_EQ((*engine)->model_info().weight_dtype, mode.weight_dtype);
  ASSERT_EQ((*engine)->model_info().kv_dtype, mode.kv_dtype);
  const std::vector<int32_t> prompt = RandomPrompt(c.prompt_length, config);
  auto logits = (*engine)->PromptLogits(prompt);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  const std::vector<double> ref = ReferenceLogits(dir, prompt, {});
  ExpectMatchesReference(ref, *logits, 1e-2);
  EXPECT_EQ(std::max_element(logits->begin(), logits->end()) - logits->begin(),
            std::max_element(ref.begin(), ref.end()) - ref.begin());
  // The agreement means something only where the reference's top two logits lie further apart
  // than twice the error: then no error of that size could swap them.
  std::vector<double> sorted = ref;
  std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
  double max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) max_diff = std::max(max_diff, std::fabs(ref[i] - (*logits)[i]));
  EXPECT_GT(sorted[0] - sorted[1], 2 * max_diff) << "the top two reference logits are within the error";
}

INSTANTIATE_TEST_SUITE_P(
    Models, Bf16StorageReferenceTest,
    ::testing::Combine(
        ::testing::Values(ReferenceCase{"mha_untied_f32", {{"num_key_value_heads", 4}}, DType::kF32, 1, 37},
                          ReferenceCase{"gqa_tied_bf16", {{"tie_word_embeddings", true}}, DType::kBF16, 1, 37},
                          ReferenceCase{"qwen2_qkv_bias",
                                        {{"architectures", {"Qwen2ForCausalLM"}}, {"rope_theta", 1000000.0}},
                                        DType::kBF16, 1, 37},
                          ReferenceCase{"llama_attention_bias", {{"attention_bias", true}}, DType::kF32, 1, 21},
                          ReferenceCase{"tied_f32", {{"tie_word_embeddings", true}}, DType::kF32, 1, 150}),
        ::testing::Values(StorageMode{"weights_bf16", ElementType::kBFloat16, ElementType::kFloat32},
                          StorageMode{"kv_bf16", ElementType::kFloat32, ElementType::kBFloat16},
                          StorageMode{"both_bf16", ElementType::kBFloat16, ElementType::kBFloat16})),
    [](const auto& info) {
      return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
    });

// A few tokens at the start of a long sequence and a few far into it, the tokens between absent:
// the engine's rope_position_gap against the reference's --position-gap, both attending over
// the tokens present only. The late tokens' queries meet the early keys across the whole
// distance, where the RoPE scalings differ most. Every RoPE type, in transformers 4.x's form
// (top-level rope_theta and rope_scaling) and 5.x's (rope_parameters).
struct LongPositionCase {
  std::string name;
  int64_t offset;  // position of the first late token
  json overrides;
};

constexpr int kEarlyTokens = 4;
constexpr int kLateTokens = 8;  // with the early ones, two prefill steps of 8

std::vector<LongPositionCase> LongPositionCases() {
  struct RopeKind {
    const char* name;
    double theta;
    json scaling;  // without rope_type
  };
  const RopeKind kinds[] = {
      {"default", 10000.0, json::object()},
      {"linear", 10000.0, {{"factor", 8.0}}},
      {"dynamic", 10000.0, {{"factor", 2.0}}},
      // Llama 3.1's and Qwen2.5's published scalings.
      {"llama3", 500000.0,
       {{"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}},
      {"yarn", 1000000.0, {{"factor", 4.0}, {"original_max_position_embeddings", 32768}}},
  };
  std::vector<LongPositionCase> cases;
  for (const int64_t offset : {int64_t{131072}, int64_t{1048576}}) {
    for (const RopeKind& kind : kinds) {
      // HF's dynamic NTK takes its base from the sequence's length when that exceeds
      // max_position_embeddings; the engine (like vLLM) fixes it at max_position_embeddings *
      // factor. Setting that product to the sequence's length makes the two the same: HF's own
      // result for this sequence. The other types get a context that holds the sequence.
      const double factor = kind.scaling.value("factor", 1.0);
      const int64_t max_positions = std::string(kind.name) == "dynamic"
                                        ? static_cast<int64_t>((offset + kLateTokens) / factor)
                                        : 2 * offset;
      json scaling = kind.scaling;
      scaling["rope_type"] = kind.name;
      json v4 = {{"max_position_embeddings", max_positions}, {"rope_theta", kind.theta}, {"rope_scaling", scaling}};
      json v5 = {{"max_position_embeddings", max_positions}, {"rope_theta", nullptr}, {"rope_parameters", scaling}};
      v5["rope_parameters"]["rope_theta"] = kind.theta;
      const std::string at = "_at_" + std::to_string(offset);
      cases.push_back({std::string("rope_scaling_") + kind.name + at, offset, v4});
      cases.push_back({std::string("rope_parameters_") + kind.name + at, offset, v5});
    }
  }
  return cases;
}

class LongPositionLogitsTest : public ::testing::TestWithParam<LongPositionCase> {};

TEST_P(LongPositionLogitsTest, MatchesFp64Reference) {
  const LongPositionCase& c = GetParam();
  TempDir dir;
  const json config = WriteTestModel(dir, c.overrides, DType::kF32);
  EngineOptions options = TestOptions(dir);
  options.rope_position_gap = {kEarlyTokens, c.offset - kEarlyTokens};
  options.kv_cache.capacity_tokens = 64;  // the tokens present, not the context
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const std::vector<int32_t> prompt = RandomPrompt(kEarlyTokens + kLateTokens, config);
  auto logits = (*engine)->PromptLogits(prompt);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  // The engine's error here is about 3e-7 of the largest logit; RoPE angles computed in fp32
  // instead of double put it at 1.5e-5 to 7e-4.
  ExpectMatchesReference(ReferenceLogits(dir, prompt, options.rope_position_gap), *logits, 5e-6);
}

INSTANTIATE_TEST_SUITE_P(Offsets, LongPositionLogitsTest, ::testing::ValuesIn(LongPositionCases()),
                         [](const auto& info) { return info.param.name; });

TEST(RopePositionGapTest, NegativeLengthIsRefusedByName) {
  TempDir dir;
  testing::WriteModelOrDie(dir / "model", SmallConfig());
  EngineOptions options = TestOptions(dir);
  options.rope_position_gap = {4, -1};
  auto engine = Engine::Create(options);
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("rope_position_gap"), std::string::npos) << engine.status().ToString();
}

}  // namespace
}  // namespace bpt
