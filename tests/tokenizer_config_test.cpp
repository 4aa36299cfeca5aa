// tokenizer_config.json and the template files beside it, read as transformers reads them.
#include "tokenizer_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "test_models.h"

namespace bpt {
namespace {

using testing::TempDir;

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(TokenizerConfig, AbsentFilesGiveAnEmptyConfig) {
  TempDir dir;
  auto config = LoadTokenizerConfig(dir.path());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->bos_token.has_value());
  EXPECT_TRUE(config->chat_templates.empty());
  EXPECT_EQ(config->ChatTemplateFor(false), nullptr);
}

TEST(TokenizerConfig, ReadsTokensAsStringsOrAddedTokens) {
  TempDir dir;
  Write(dir / "tokenizer_config.json",
        R"({"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false}, "eos_token": "</s>",
            "chat_template": "{{ bos_token }}"})");
  auto config = LoadTokenizerConfig(dir.path());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->bos_token.value_or(""), "<s>");
  EXPECT_EQ(config->eos_token.value_or(""), "</s>");
  ASSERT_NE(config->ChatTemplateFor(false), nullptr);
  EXPECT_EQ(*config->ChatTemplateFor(false), "{{ bos_token }}");
}

TEST(TokenizerConfig, SpecialTokensAreThoseTheFileSets) {
  TempDir dir;
  Write(dir / "tokenizer_config.json",
        R"({"bos_token": null, "eos_token": "<|im_end|>", "pad_token": {"content": "<|endoftext|>"},
            "unk_token": null, "additional_special_tokens": ["<a>"], "model_max_length": 32768})");
  auto config = LoadTokenizerConfig(dir.path());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const std::map<std::string, std::string> expected = {{"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"}};
  EXPECT_EQ(config->special_tokens, expected);
  EXPECT_FALSE(config->bos_token.has_value());
  EXPECT_EQ(config->eos_token.value_or(""), "<|im_end|>");
}

TEST(TokenizerConfig, NamedTemplatesPickToolUseOnlyWithTools) {
  TempDir dir;
  Write(dir / "tokenizer_config.json",
        R"({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"},
                              {"name": "rag", "template": "R"}]})");
  auto config = LoadTokenizerConfig(dir.path());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->chat_templates.size(), 3u);
  EXPECT_EQ(*config->ChatTemplateFor(false), "D");
  EXPECT_EQ(*config->ChatTemplateFor(true), "T");
}

TEST(TokenizerConfig, ASingleNonDefaultTemplateIsNeverPickedImplicitly) {
  TempDir dir;
  Write(dir / "tokenizer_config.json", R"({"chat_template": [{"name": "rag", "template": "R"}]})");
  auto config = LoadTokenizerConfig(dir.path());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->ChatTemplateFor(false), nullptr);
  EXPECT_EQ(config->ChatTemplateFor(true), nullptr);
}

TEST(TokenizerConfig, JinjaFilesReplaceTheConfigsTemplates) {
  TempDir dir;
  Write(dir / "tokenizer_config.json", R"({"chat_template": "from the config"})");
  Write(dir / "chat_template.jinja", "from the file");
  std::filesystem::create_directory(dir / "additional_chat_templates");
  Write(dir / "additional_chat_templates/tool_use.jinja", "tools file");
  auto config = LoadTokenizerConfig(dir.path());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(*config->ChatTemplateFor(false), "from the file");
  EXPECT_EQ(*config->ChatTemplateFor(true), "tools file");
}

TEST(TokenizerConfig, ErrorsNameTheFileAndKey) {
  const struct {
    const char* json;
    const char* expected;
  } cases[] = {
      {R"({"bos_token": 3})", "bos_token"},
      {R"({"eos_token": {"lstrip": true}})", "eos_token.content"},
      {R"({"chat_template": 7})", "chat_template must be a string or a list"},
      {R"({"chat_template": [{"name": "x"}]})", "chat_template[0]"},
      {R"({"chat_template": )", "tokenizer_config.json"},
  };
  for (const auto& c : cases) {
    TempDir dir;
    Write(dir / "tokenizer_config.json", c.json);
    auto config = LoadTokenizerConfig(dir.path());
    ASSERT_FALSE(config.ok()) << c.json;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(config.status().message().find(c.expected), std::string::npos) << config.status().message();
    EXPECT_NE(config.status().message().find("tokenizer_config.json"), std::string::npos) << config.status().message();
  }
}

TEST(TokenizerConfig, AnOversizedTemplateFileIsRefused) {
  TempDir dir;
  Write(dir / "chat_template.jinja", std::string((1 << 20) + 1, 'x'));
  auto config = LoadTokenizerConfig(dir.path());
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("chat_template.jinja"), std::string::npos) << config.status().message();
}

}  // namespace
}  // namespace bpt
