// Every malformed model directory gives a Status that names the problem; none crashes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine.h"
#include "test_models.h"

namespace bpt {
namespace {

using nlohmann::json;
using testing::SmallConfig;
using testing::TempDir;

Status Load(const std::string& dir) {
  EngineOptions options;
  options.model_dir = dir;
  options.kv_cache.capacity_tokens = 256;
  auto engine = Engine::Create(options);
  return engine.ok() ? OkStatus() : engine.status();
}

void WriteConfig(const std::string& dir, const std::string& text) { std::ofstream(dir + "/config.json") << text; }

#define EXPECT_STATUS(status_expr, expected_code, fragment)                               \
  do {                                                                                    \
    const Status s_ = (status_expr);                                                      \
    EXPECT_EQ(s_.code(), expected_code) << s_.ToString();                                 \
    EXPECT_NE(s_.message().find(fragment), std::string::npos) << s_.ToString();           \
  } while (0)

TEST(ModelLoading, ValidModelLoads) {
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), SmallConfig());
  EXPECT_TRUE(Load(dir.path()).ok());
}

TEST(ModelLoading, MissingDirectoryOrFiles) {
  TempDir dir;
  EXPECT_STATUS(Load(dir / "nowhere"), StatusCode::kNotFound, "does not exist");
  EXPECT_STATUS(Load(dir.path()), StatusCode::kNotFound, "config.json");
  WriteConfig(dir.path(), SmallConfig().dump());
  EXPECT_STATUS(Load(dir.path()), StatusCode::kNotFound, "model.safetensors");
}

TEST(ModelLoading, UnknownArchitecture) {
  TempDir dir;
  json c = SmallConfig();
  c["architectures"] = {"GPT2LMHeadModel"};
  WriteConfig(dir.path(), c.dump());
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument, "unknown architecture 'GPT2LMHeadModel'");
}

TEST(ModelLoading, BadConfigValues) {
  TempDir dir;
  WriteConfig(dir.path(), "{ not json");
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument, "not valid JSON");
  std::string text = SmallConfig().dump();
  text.replace(text.find("\"rope_theta\":10000.0"), 20, "\"rope_theta\":NaN");
  WriteConfig(dir.path(), text);
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument, "non-finite");
  text = SmallConfig().dump();
  text.replace(text.find("\"rms_norm_eps\":1e-05"), 20, "\"rms_norm_eps\":1e999");
  WriteConfig(dir.path(), text);
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument, "non-finite");
  json c = SmallConfig();
  c["num_key_value_heads"] = 3;
  WriteConfig(dir.path(), c.dump());
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument, "multiple of 'num_key_value_heads'");
  c = SmallConfig();
  c.erase("hidden_size");
  WriteConfig(dir.path(), c.dump());
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument, "missing required field 'hidden_size'");
  c = SmallConfig();
  c["rope_scaling"] = {{"rope_type", "su"}, {"factor", 2.0}};
  WriteConfig(dir.path(), c.dump());
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument, "unsupported rope_type 'su'");
}

TEST(ModelLoading, MissingTensorIsNamed) {
  TempDir dir;
  json c = SmallConfig();
  testing::WriteModelOrDie(dir.path(), c);
  c["num_hidden_layers"] = 3;
  WriteConfig(dir.path(), c.dump());
  EXPECT_STATUS(Load(dir.path()), StatusCode::kNotFound, "'model.layers.2.input_layernorm.weight'");
}

TEST(ModelLoading, WrongShapeNamesBothShapes) {
  TempDir dir;
  json c = SmallConfig();
  testing::WriteModelOrDie(dir.path(), c);
  c["intermediate_size"] = 96;
  WriteConfig(dir.path(), c.dump());
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument,
                "'model.layers.0.mlp.gate_proj.weight' has shape [80, 48], expected [96, 48]");
}

TEST(ModelLoading, TruncatedWeights) {
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), SmallConfig());
  const std::string file = dir / "model.safetensors";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 100);
  EXPECT_STATUS(Load(dir.path()), StatusCode::kDataLoss, "truncated file");
  std::filesystem::resize_file(file, 5);
  EXPECT_STATUS(Load(dir.path()), StatusCode::kDataLoss, "truncated file");
}

TEST(ModelLoading, HeaderLengthBeyondTheFile) {
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), SmallConfig());
  std::fstream f(dir / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  const uint64_t huge = 1ULL << 40;
  f.write(reinterpret_cast<const char*>(&huge), 8);
  f.close();
  EXPECT_STATUS(Load(dir.path()), StatusCode::kDataLoss, "header length 1099511627776 runs beyond the file");
}

TEST(ModelLoading, ShardedIndexNamingAMissingShard) {
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), SmallConfig(), DType::kBF16, 1, /*shards=*/2);
  EXPECT_TRUE(Load(dir.path()).ok());
  std::filesystem::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_STATUS(Load(dir.path()), StatusCode::kNotFound, "model-00002-of-00002.safetensors");
}

TEST(ModelLoading, TokenizerLargerThanVocabulary) {
  TempDir dir;
  json c = SmallConfig();  // 97 ids; the demo tokenizer has 1000
  testing::WriteModelOrDie(dir.path(), c, DType::kBF16, 1, 1, testing::DemoTokenizerPath());
  EXPECT_STATUS(Load(dir.path()), StatusCode::kInvalidArgument, "more than the model's vocab_size 97");
}

}  // namespace
}  // namespace bpt
