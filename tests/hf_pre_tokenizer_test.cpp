// tokenizer.json pre-tokenizers against HF tokenizers' own pieces for the same spec and text.
#include "hf_pre_tokenizer.h"

#include <gtest/gtest.h>

#include <thread>

#include "hf_byte_level.h"
#include "hf_reference.h"

namespace bpt::hf {
namespace {

using nlohmann::json;
using testing::HfCase;

constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json ByteLevel(bool add_prefix_space, bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

json SplitSpec(json pattern, const std::string& behavior, bool invert) {
  return {{"type", "Split"}, {"pattern", std::move(pattern)}, {"behavior", behavior}, {"invert", invert}};
}

json RegexSplitThenByteLevel(const char* pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers", {SplitSpec({{"Regex", pattern}}, "Isolated", false), ByteLevel(false, false)}}};
}

json Metaspace(const std::string& scheme, bool split) {
  return {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", scheme}, {"split", split}};
}

std::vector<json> Specs() {
  std::vector<json> specs = {
      ByteLevel(false, true),
      ByteLevel(true, true),
      ByteLevel(true, false),
      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}},
      RegexSplitThenByteLevel(kLlama3Pattern),
      RegexSplitThenByteLevel(kQwen2Pattern),
      {{"type", "Sequence"},
       {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, ByteLevel(true, true)}}},
      {{"type", "Digits"}, {"individual_digits", true}},
      {{"type", "Digits"}, {"individual_digits", false}},
      Metaspace("always", true),
      Metaspace("first", true),
      Metaspace("never", true),
      Metaspace("first", false),
      {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", true}},
      {{"type", "Metaspace"}, {"replacement", "_"}, {"prepend_scheme", "always"}, {"split", true}},
      {{"type", "Sequence"}, {"pretokenizers", {{{"type", "WhitespaceSplit"}}, Metaspace("first", true)}}},
      {{"type", "Punctuation"}},
      {{"type", "Whitespace"}},
      {{"type", "WhitespaceSplit"}},
      {{"type", "BertPreTokenizer"}},
      SplitSpec({{"Regex", R"(\s+)"}}, "Removed", false),
      SplitSpec({{"Regex", R"(\p{L}+)"}}, "Removed", true),
      SplitSpec({{"String", "."}}, "Isolated", false),
      SplitSpec({{"String", "\u2581"}}, "MergedWithNext", false),
      SplitSpec({{"Regex", R"(^\S|\S$|\h+|.)"}}, "Isolated", false),
      SplitSpec({{"Regex", "a*"}}, "Isolated", false),
      SplitSpec({{"Regex", "[a-c]*"}}, "Contiguous", true),
      SplitSpec({{"Regex", R"(\d+|\s)"}}, "Removed", false),
  };
  for (const char* behavior : {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"}) {
    specs.push_back({{"type", "Punctuation"}, {"behavior", behavior}});
    specs.push_back(SplitSpec({{"String", " "}}, behavior, false));
    specs.push_back(SplitSpec({{"Regex", R"(\p{N}|\s+)"}}, behavior, true));
    specs.push_back(SplitSpec({{"Regex", "a*"}}, behavior, false));
  }
  return specs;
}

std::string Show(const std::vector<std::string>& pieces) { return json(pieces).dump(); }

TEST(HfPreTokenizerTest, PiecesMatchHfTokenizers) {
  const std::vector<std::string> texts = testing::HfTestTexts();
  std::vector<HfCase> cases;
  for (const json& spec : Specs()) {
    for (const bool at_text_start : {true, false}) cases.push_back({"pre_tokenizer", spec, at_text_start});
  }
  const json hf = testing::RunHfComponents(cases, texts);
  ASSERT_EQ(hf.size(), cases.size());
  int compared = 0;
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE(cases[c].spec.dump() + (cases[c].at_text_start ? " at text start" : " after the text start"));
    ASSERT_FALSE(hf[c].contains("error")) << hf[c]["error"];
    auto pre_tokenizer = ParsePreTokenizer(cases[c].spec, "pre_tokenizer");
    ASSERT_TRUE(pre_tokenizer.ok()) << pre_tokenizer.status().ToString();
    for (size_t t = 0; t < texts.size(); ++t) {
      std::vector<std::string> pieces;
      (*pre_tokenizer)->Split(texts[t], cases[c].at_text_start, pieces);
      const auto expected = hf[c]["outputs"][t].get<std::vector<std::string>>();
      if (pieces != expected) {
        ADD_FAILURE() << "text " << t << " (" << texts[t].substr(0, 80) << ")\n  ours: " << Show(pieces).substr(0, 2000)
                      << "\n  HF:   " << Show(expected).substr(0, 2000);
      }
      ++compared;
    }
  }
  EXPECT_EQ(compared, static_cast<int>(cases.size() * texts.size()));
}

// Specs HF refuses are refused here too, and specs HF loads load here.
TEST(HfPreTokenizerTest, RefusesWhatHfRefuses) {
  const std::vector<json> specs = {
      {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", false}},
      {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", false}, {"prepend_scheme", "never"}},
      {{"type", "Split"}, {"pattern", {{"Regex", "("}}}, {"behavior", "Isolated"}, {"invert", false}},
      {{"type", "Split"}, {"pattern", {{"Regex", " "}}}, {"invert", false}},
      {{"type", "Split"}, {"pattern", {{"Regex", " "}}}, {"behavior", "Sideways"}, {"invert", false}},
      {{"type", "ByteLevel"}, {"trim_offsets", true}},
      {{"type", "NoSuchThing"}},
  };
  std::vector<HfCase> cases;
  for (const json& spec : specs) cases.push_back({"pre_tokenizer", spec, true});
  const json hf = testing::RunHfComponents(cases, {"a b"});
  ASSERT_EQ(hf.size(), cases.size());
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto ours = ParsePreTokenizer(specs[c], "pre_tokenizer");
    EXPECT_EQ(ours.ok(), !hf[c].contains("error")) << specs[c].dump() << "\n  ours: " << ours.status().ToString()
                                                   << "\n  HF: " << hf[c].dump();
  }
}

TEST(HfPreTokenizerTest, ErrorsNameTheField) {
  const std::vector<testing::HfErrorCase> cases = {
      {{{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, {{"type", "Foo"}}}}},
       "pre_tokenizer.pretokenizers[1].type: 'Foo' is not a supported pre-tokenizer"},
      {SplitSpec({{"Regex", "(ab"}}, "Isolated", false), "pre_tokenizer.pattern.Regex: the regex '(ab' is refused by PCRE2: missing closing parenthesis"},
      {SplitSpec({{"Glob", "*"}}, "Isolated", false), "pre_tokenizer.pattern: 'Glob' is not a pattern kind"},
      {{{"type", "Split"}, {"pattern", {{"String", " "}}}, {"invert", false}}, "pre_tokenizer.behavior: missing"},
      {SplitSpec({{"String", " "}}, "Sideways", false), "pre_tokenizer.behavior: 'Sideways' is not one of"},
      {{{"type", "Metaspace"}, {"replacement", "ab"}}, "pre_tokenizer.replacement: expected one character"},
      {{{"type", "Metaspace"}, {"replacement", "_"}, {"prepend_scheme", "sometimes"}}, "pre_tokenizer.prepend_scheme: 'sometimes'"},
      {{{"type", "Digits"}, {"individual_digits", "yes"}}, "pre_tokenizer.individual_digits: expected true or false"},
      {{{"type", "UnicodeScripts"}}, "pre_tokenizer.type: 'UnicodeScripts' is not a supported pre-tokenizer"},
      {json::array(), "pre_tokenizer: expected an object"},
      {{{"types", "ByteLevel"}}, "pre_tokenizer.type: missing"},
  };
  testing::ExpectRefused(cases, [](const json& spec) { return ParsePreTokenizer(spec, "pre_tokenizer"); });
  const auto none = ParsePreTokenizer(nullptr, "pre_tokenizer");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
}

TEST(HfPreTokenizerTest, OnePreTokenizerServesTwoThreads) {
  auto pre_tokenizer = ParsePreTokenizer(RegexSplitThenByteLevel(kLlama3Pattern), "pre_tokenizer");
  ASSERT_TRUE(pre_tokenizer.ok()) << pre_tokenizer.status().ToString();
  std::string text;
  const std::vector<std::string> texts = testing::HfTestTexts();
  for (int copy = 0; copy < 30; ++copy) {
    for (const std::string& t : texts) text += t.substr(0, 1000) + " ";
  }
  std::vector<std::string> alone;
  (*pre_tokenizer)->Split(text, true, alone);
  std::vector<std::string> first, second;
  std::thread a([&] { for (int i = 0; i < 20; ++i) { first.clear(); (*pre_tokenizer)->Split(text, true, first); } });
  std::thread b([&] { for (int i = 0; i < 20; ++i) { second.clear(); (*pre_tokenizer)->Split(text, true, second); } });
  a.join();
  b.join();
  EXPECT_GT(alone.size(), 1000u);
  EXPECT_EQ(first, alone);
  EXPECT_EQ(second, alone);
}

TEST(HfByteLevelTest, AlphabetIsGpt2s) {
  EXPECT_EQ(BytesToByteLevelChars(" "), "\u0120");
  EXPECT_EQ(BytesToByteLevelChars("\n"), "\u010a");
  EXPECT_EQ(BytesToByteLevelChars(std::string(1, '\0')), "\u0100");
  EXPECT_EQ(BytesToByteLevelChars("\xad"), "\u0143");
  EXPECT_EQ(BytesToByteLevelChars("\x7f"), "\u0121");
  EXPECT_EQ(BytesToByteLevelChars("a~\xa1\xff"), "a~\u00a1\u00ff");
  EXPECT_EQ(BytesToByteLevelChars("\xc3\xa9"), "\u00c3\u00a9");
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string chars = BytesToByteLevelChars(all);
  EXPECT_EQ(ByteLevelCharsToBytes(chars), all);
  // 256 distinct characters, none a space or control: 94 + 12 + 82 one-for-one, 68 shifted.
  EXPECT_EQ(chars.size(), 94u + 2 * (256u - 94u));
  // Characters outside the alphabet stay as they are.
  EXPECT_EQ(ByteLevelCharsToBytes("\u0120日本 \u0144x"), " 日本 \u0144x");
}

}  // namespace
}  // namespace bpt::hf
