// bptserve-make-model's tokenizer: the files of a Hugging Face tokenizer directory (or a
// SentencePiece model) copied in, and config.json fitted to them (ReadTokenizerFiles,
// FitConfigToTokenizer). The fixture tests/fixtures/hf-tokenizer/ comes from
// tests/fixtures/make_hf_tokenizer.py: a 300-piece byte-level BPE with three special tokens at
// ids 300 to 302, BOS <|begin_of_text|> (300), EOS <|eot_id|> (302).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine.h"
#include "model_config.h"
#include "random_model.h"
#include "test_models.h"
#include "tokenizer_files.h"

namespace bpt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::SmallConfig;
using testing::TempDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json ReadJson(const std::string& path) { return json::parse(ReadAll(path)); }

// A copy of the fixture that a test may edit.
std::string CopyFixture(const TempDir& dir) {
  const std::string copy = dir / "tokenizer";
  fs::copy(BPTSERVE_HF_TOKENIZER, copy);
  return copy;
}

StatusOr<json> FittedConfig(const std::string& tokenizer_path, json config = SmallConfig()) {
  BPT_ASSIGN_OR_RETURN(TokenizerFiles files, ReadTokenizerFiles(tokenizer_path));
  FitConfigToTokenizer(files, &config);
  return config;
}

TEST(MakeModelTokenizer, HuggingFaceDirectoryIsCopiedAndTheConfigFitsIt) {
  TempDir dir;
  RandomModelSpec spec;
  spec.config = SmallConfig();  // vocab_size 97, bos 1, eos 2
  spec.dtype = DType::kF32;
  spec.tokenizer = BPTSERVE_HF_TOKENIZER;
  spec.fit_config_to_tokenizer = true;
  const Status written = WriteRandomModel(dir / "model", spec);
  ASSERT_TRUE(written.ok()) << written.ToString();

  int copied = 0;
  for (const char* name : kTokenizerFileNames) {
    const fs::path source = fs::path(BPTSERVE_HF_TOKENIZER) / name;
    if (!fs::exists(source)) {
      EXPECT_FALSE(fs::exists(dir / "model/" + name)) << name;
      continue;
    }
    ++copied;
    EXPECT_EQ(ReadAll(dir / "model/" + name), ReadAll(source)) << name;
  }
  EXPECT_EQ(copied, 5);  // all but tokenizer.model

  const json config = ReadJson(dir / "model/config.json");
  EXPECT_EQ(config["vocab_size"], 303);  // the added tokens' ids, past the model's 300
  EXPECT_EQ(config["bos_token_id"], 300);
  EXPECT_EQ(config["eos_token_id"], 302);

  // The engine takes the directory: the weights match the fitted vocab_size, and the copied
  // generation_config.json's defaults (and its eos ids 301 and 302) are inside it.
  EngineOptions options;
  options.model_dir = dir / "model";
  options.kv_cache.capacity_tokens = 64;
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_EQ((*engine)->model_info().vocab_size, 303);
  EXPECT_FLOAT_EQ((*engine)->model_info().default_sampling.temperature, 0.6f);
}

TEST(MakeModelTokenizer, AddedTokenObjectsAndANullBos) {
  TempDir dir;
  const std::string tokenizer = CopyFixture(dir);
  json tc = ReadJson(tokenizer + "/tokenizer_config.json");
  tc["bos_token"] = nullptr;  // as Qwen2.5's
  tc["eos_token"] = {{"__type", "AddedToken"}, {"content", "<|end_of_text|>"}, {"special", true}};
  std::ofstream(tokenizer + "/tokenizer_config.json") << tc.dump();
  auto config = FittedConfig(tokenizer);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ((*config)["bos_token_id"], 300);  // the post-processor still puts it before a prompt
  EXPECT_EQ((*config)["eos_token_id"], 301);

  // Neither a post-processor's BOS nor a bos_token: none.
  json tj = ReadJson(tokenizer + "/tokenizer.json");
  tj["post_processor"] = nullptr;
  std::ofstream(tokenizer + "/tokenizer.json") << tj.dump();
  config = FittedConfig(tokenizer);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->contains("bos_token_id"));
}

TEST(MakeModelTokenizer, WithoutTokenizerConfigBosIsWhatThePostProcessorPutsFirst) {
  TempDir dir;
  const std::string tokenizer = CopyFixture(dir);
  fs::remove(tokenizer + "/tokenizer_config.json");
  auto config = FittedConfig(tokenizer);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ((*config)["bos_token_id"], 300);
  EXPECT_FALSE(config->contains("eos_token_id"));
}

TEST(MakeModelTokenizer, ALargerVocabSizeStays) {
  json padded = SmallConfig();
  padded["vocab_size"] = 320;  // models pad it past the tokenizer (Qwen2.5: 151936 for 151665)
  auto config = FittedConfig(BPTSERVE_HF_TOKENIZER, padded);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ((*config)["vocab_size"], 320);
}

TEST(MakeModelTokenizer, SentencePieceModelGivesItsOwnIds) {
  json small = SmallConfig();
  small.erase("bos_token_id");
  small["eos_token_id"] = 7;
  auto config = FittedConfig(testing::DemoTokenizerPath(), small);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ((*config)["vocab_size"], 1000);
  EXPECT_EQ((*config)["bos_token_id"], 1);
  EXPECT_EQ((*config)["eos_token_id"], 2);
}

TEST(MakeModelTokenizer, AnEosTokenTheFileLacksIsAddedAsTransformersAddsIt) {
  TempDir dir;
  const std::string tokenizer = CopyFixture(dir);
  json tc = ReadJson(tokenizer + "/tokenizer_config.json");
  tc["eos_token"] = "</s>";
  std::ofstream(tokenizer + "/tokenizer_config.json") << tc.dump();
  auto config = FittedConfig(tokenizer);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ((*config)["eos_token_id"], 303);  // the next free id
  EXPECT_EQ((*config)["vocab_size"], 304);
}

TEST(MakeModelTokenizer, ErrorsNameTheFileAndKey) {
  TempDir dir;
  const std::string tokenizer = CopyFixture(dir);
  json tj = ReadJson(tokenizer + "/tokenizer.json");
  tj["model"]["vocab"]["!"] = "zero";
  std::ofstream(tokenizer + "/tokenizer.json") << tj.dump();
  Status s = ReadTokenizerFiles(tokenizer).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tokenizer.json: model.vocab"), std::string::npos) << s.ToString();

  fs::remove(tokenizer + "/tokenizer.json");
  s = ReadTokenizerFiles(tokenizer).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("has neither tokenizer.json nor tokenizer.model"), std::string::npos) << s.ToString();
  s = ReadTokenizerFiles(dir / "nowhere").status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("no tokenizer at"), std::string::npos) << s.ToString();
}

// The tool itself fits the config (tests that write models through WriteRandomModel may not).
TEST(MakeModelTokenizer, TheToolFitsTheConfig) {
  TempDir dir;
  const std::string command = std::string(BPTSERVE_BIN_DIR) + "/bptserve-make-model --out " + (dir / "model") +
                              " --preset demo --dtype f32 --tokenizer " + BPTSERVE_HF_TOKENIZER + " > /dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const json config = ReadJson(dir / "model/config.json");
  EXPECT_EQ(config["vocab_size"], 1000);  // the demo shape's, already larger than 303
  EXPECT_EQ(config["eos_token_id"], 302);
  EXPECT_TRUE(fs::exists(dir / "model/chat_template.jinja"));
}

// The preset the CPU benchmarks run: SmolLM2-135M's shape as the engine reads it, with the Llama 2
// vocabulary, and positions for a 16K prompt and its decode.
TEST(MakeModelPreset, SmolLM2IsTheShapeOfSmolLM2With32000Tokens) {
  auto config = ParseModelConfig(PresetConfig("smollm2-135m").dump(), "smollm2-135m");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->hidden_size, 576);
  EXPECT_EQ(config->intermediate_size, 1536);
  EXPECT_EQ(config->num_layers, 30);
  EXPECT_EQ(config->num_heads, 9);
  EXPECT_EQ(config->num_kv_heads, 3);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->vocab_size, 32000);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(config->rope_theta, 100000.0);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_GE(config->max_position_embeddings, 16384 + 1024);
}

}  // namespace
}  // namespace bpt
