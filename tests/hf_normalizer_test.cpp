// tokenizer.json normalizers against HF tokenizers' own normalize_str for the same spec and text.
#include "hf_normalizer.h"

#include <gtest/gtest.h>

#include "hf_reference.h"

namespace bpt::hf {
namespace {

using nlohmann::json;
using testing::HfCase;

json Replace(json pattern, const std::string& content) {
  return {{"type", "Replace"}, {"pattern", std::move(pattern)}, {"content", content}};
}

TEST(HfNormalizerTest, TextMatchesHfTokenizers) {
  const std::vector<json> specs = {
      {{"type", "NFC"}},
      {{"type", "NFD"}},
      {{"type", "NFKC"}},
      {{"type", "NFKD"}},
      {{"type", "Lowercase"}},
      {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}},
      {{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}},
      {{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}},
      {{"type", "StripAccents"}},
      {{"type", "Prepend"}, {"prepend", "\u2581"}},
      Replace({{"String", " "}}, "\u2581"),
      Replace({{"Regex", " {2,}"}}, " "),
      Replace({{"Regex", "a*"}}, "-"),
      Replace({{"String", "."}}, ""),
      {{"type", "Sequence"},
       {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}}, Replace({{"String", " "}}, "\u2581")}}},
      {{"type", "Sequence"}, {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}, {{"type", "Lowercase"}}}}},
      {{"type", "Sequence"}, {"normalizers", json::array()}},
      {{"type", "Nmt"}},
      {{"type", "ByteLevel"}},
      {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true}, {"strip_accents", nullptr},
       {"lowercase", true}},
      {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", false}, {"strip_accents", false},
       {"lowercase", false}},
  };
  std::vector<std::string> texts = testing::HfTestTexts();
  // Control characters and an embedded NUL (the length comes from the array, not strlen), an
  // unassigned code point and a noncharacter (category Cn: BertNormalizer keeps them).
  constexpr char kControlText[] =
      "\x01\x7f tab\tnul\0? \ufffd\ufeff\u200d soft\u00ad \u4e2d\u6587 \u2581 \u0378\ufdd0";
  texts.push_back(std::string(kControlText, sizeof(kControlText) - 1));
  std::vector<HfCase> cases;
  for (const json& spec : specs) cases.push_back({"normalizer", spec, true});
  const json hf = testing::RunHfComponents(cases, texts);
  ASSERT_EQ(hf.size(), cases.size());
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE(specs[c].dump());
    ASSERT_FALSE(hf[c].contains("error")) << hf[c]["error"];
    auto normalizer = ParseNormalizer(specs[c], "normalizer");
    ASSERT_TRUE(normalizer.ok()) << normalizer.status().ToString();
    for (size_t t = 0; t < texts.size(); ++t) {
      const std::string ours = (*normalizer)->Normalize(texts[t]);
      const std::string expected = hf[c]["outputs"][t].get<std::string>();
      if (ours != expected) {
        ADD_FAILURE() << "text " << t << "\n  ours: " << json(ours).dump().substr(0, 600)
                      << "\n  HF:   " << json(expected).dump().substr(0, 600);
      }
    }
  }
}

TEST(HfNormalizerTest, ErrorsNameTheField) {
  const std::vector<testing::HfErrorCase> cases = {
      {{{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Upcase"}}}}},
       "normalizer.normalizers[1].type: 'Upcase' is not a supported normalizer"},
      {{{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}}, "normalizer.type: 'Precompiled'"},
      {Replace({{"Regex", "[a-"}}, "x"), "normalizer.pattern.Regex: the regex '[a-' is refused by PCRE2"},
      {{{"type", "Replace"}, {"pattern", {{"String", "a"}}}}, "normalizer.content: missing"},
      {{{"type", "Prepend"}}, "normalizer.prepend: missing"},
      {{{"type", "Strip"}, {"strip_left", true}}, "normalizer.strip_right: missing"},
      {{{"type", "Sequence"}, {"normalizers", "NFC"}}, "normalizer.normalizers: expected a list"},
      {{{"type", 3}}, "normalizer.type: expected a string"},
  };
  testing::ExpectRefused(cases, [](const json& spec) { return ParseNormalizer(spec, "normalizer"); });
  const auto none = ParseNormalizer(nullptr, "normalizer");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
}

}  // namespace
}  // namespace bpt::hf
