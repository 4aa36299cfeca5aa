// Whole-model logits against tests/reference/llama_reference.py: an fp64 numpy implementation
// of the HF modeling equations that shares no code with the engine.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

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

class ReferenceLogitsTest : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(ReferenceLogitsTest, MatchesFp64Reference) {
  const ReferenceCase& c = GetParam();
  TempDir dir;
  json config = SmallConfig();
  config.merge_patch(c.overrides);
  testing::WriteModelOrDie(dir / "model", config, c.dtype, /*seed=*/42, c.shards);

  EngineOptions options;
  options.model_dir = dir / "model";
  options.scheduler.prefill_block = 8;  // the prompt spans several blocks
  options.kv_cache.block_size = 4;
  options.kv_cache.shuffle_blocks = true;
  options.cpu.attention_tiling = {3, 5};
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();

  std::mt19937 rng(7);
  std::vector<int32_t> prompt(c.prompt_length);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % config["vocab_size"].get<int>());
  auto logits = (*engine)->PromptLogits(prompt);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();

  std::ofstream(dir / "tokens.json") << json(prompt).dump();
  const std::string command = std::string(BPTSERVE_PYTHON) + " " + BPTSERVE_REFERENCE_SCRIPT + " " +
                              (dir / "model") + " " + (dir / "tokens.json") + " " + (dir / "ref.json");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(dir / "ref.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::vector<double> ref = json::parse(ss.str()).get<std::vector<double>>();
  ASSERT_EQ(ref.size(), logits->size());

  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    max_diff = std::max(max_diff, std::fabs(ref[i] - (*logits)[i]));
  }
  ASSERT_GT(max_ref, 0.1) << "degenerate logits prove nothing";
  EXPECT_LE(max_diff, 1e-4 * max_ref) << "max |dlogit| " << max_diff << ", max |logit| " << max_ref;

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

}  // namespace
}  // namespace bpt
