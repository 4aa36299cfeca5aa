// HF tokenizers' own output for tokenizer.json components, computed at test time by
// tests/reference/hf_components.py (Python `tokenizers`), and the texts they are compared over.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_models.h"

namespace bpt::testing {

struct HfCase {
  std::string kind;  // "normalizer" or "pre_tokenizer"
  nlohmann::json spec;
  bool at_text_start = true;
};

// Per case: {"error": ...} where HF refuses the spec, else {"outputs": [one per text]}.
inline nlohmann::json RunHfComponents(const std::vector<HfCase>& cases, const std::vector<std::string>& texts) {
  TempDir dir;
  nlohmann::json request = nlohmann::json::array();
  for (const HfCase& c : cases) {
    request.push_back({{"kind", c.kind}, {"spec", c.spec}, {"texts", texts}, {"at_text_start", c.at_text_start}});
  }
  std::ofstream(dir / "cases.json") << request.dump();
  const std::string command = std::string(BPTSERVE_PYTHON) + " " + BPTSERVE_HF_COMPONENTS_SCRIPT + " " +
                              (dir / "cases.json") + " " + (dir / "results.json");
  if (std::system(command.c_str()) != 0) {
    ADD_FAILURE() << command << " failed (is the Python package `tokenizers` installed?)";
    return nullptr;
  }
  std::ifstream in(dir / "results.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// A spec that must be refused, with a part of the message that names the field at fault.
struct HfErrorCase {
  nlohmann::json spec;
  std::string message_part;
};

// parse(spec) is ParseNormalizer or ParsePreTokenizer with its `where`.
template <typename Parse>
void ExpectRefused(const std::vector<HfErrorCase>& cases, Parse parse) {
  for (const HfErrorCase& c : cases) {
    const auto parsed = parse(c.spec);
    ASSERT_FALSE(parsed.ok()) << c.spec.dump();
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(c.message_part), std::string::npos)
        << parsed.status().message() << "\n  expected to contain: " << c.message_part;
  }
}

// Text that stresses what the components disagree on when they disagree: scripts, emoji ZWJ
// sequences, combining marks, whitespace of every kind and length, digits, punctuation, code,
// contractions, and a 100K-character word.
inline std::vector<std::string> HfTestTexts() {
  std::vector<std::string> texts = {
      "Hello, world! How's it going? I'm fine; we'll see. They've said: \"no\".",
      "  leading spaces, and trailing   ",
      "Ünïcödé: 日本語のテキスト, русский текст, العربية, हिन्दी, ελληνικά ΣΑΣ İstanbul ẞ",
      "family 👨‍👩‍👧‍👦 and flags 🇫🇷🇩🇪, skin 👍🏽 ok❤️",
      "e\u0301 a\u0308 \u1e9b\u0323 \u00c5 A\u030a \ufb01 \u2460 x\u00b2 \u2163 \u24b6 \u3392",
      "a\n\n\n   b\t\t c \r\n d      \u3000\u00a0 e\u0085f\u180eg\u200bh \u2028i\u2029",
      "1234567 \u0661\u0662\u0663 3.14159 1,000,000 \u00bd \u2167",
      "def f(x):\n    return x**2  # comment <tag/> $100 {a: [1, 2]} a_b __init__ ~`^|+=",
      "'S 'ſ I'LL it's they're 'll 'RE x'd",
      "▁already▁ there▁",
      "",
      " ",
      "x",
      "\u00e9",
      "x" + std::string(3000, ' ') + "y" + std::string(2000, '\n'),
  };
  std::string word;  // 100K characters, 125K bytes
  for (int i = 0; i < 25000; ++i) word += "abc\u00e9";
  texts.push_back(word);
  texts.push_back(std::string(100000, '!'));
  return texts;
}

}  // namespace bpt::testing
