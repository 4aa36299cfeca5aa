// tokenizer.json tokenizers against HF's own ids and texts for the same file and text (Python
// `tokenizers`, and transformers' AutoTokenizer where tokenizer_config.json takes part), plus
// what HF cannot tell: errors naming their place in the file, the prompt limit, threads.
#include "hf_tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <sys/stat.h>

#include <filesystem>

#include "engine.h"
#include "hf_spec_fields.h"
#include "incremental_detokenizer.h"
#include "sentencepiece_tokenizer.h"
#include "test_models.h"

namespace bpt {
namespace {

using nlohmann::json;

const std::vector<std::string>& Texts() {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> t = {
        "Hello, world! How's it going? I'm fine; we'll see.",
        "  leading spaces, and trailing   ",
        "Ünïcödé: 日本語のテキスト, русский текст, العربية, हिन्दी",
        "family 👨‍👩‍👧‍👦 and flags 🇫🇷🇩🇪 ok❤️",
        "a\n\n\n   b\t\t c \r\n d      \u3000\u00a0 e",
        "1234567 3.14159 1,000,000",
        "def f(x):\n    return x**2  # <tag/> $100 {a: [1, 2]}",
        "<|endoftext|>at the start, inside<|endoftext|>text, and <|endoftext|>",
        "<mask>  spaces  <mask> around <tag>   masks",
        "bye<|new_eos|> and <|begin|>",
        "word words sword word. (word)",
        "",
        " ",
        "x" + std::string(300, ' ') + "y",
    };
    std::string word;  // 100K characters: merges must not be quadratic
    for (int i = 0; i < 25000; ++i) word += "abc\u00e9";
    t.push_back(word);
    return t;
  }();
  return texts;
}

// Lines the BPE tokenizers are trained on, at test time.
std::vector<std::string> Corpus() {
  std::vector<std::string> corpus;
  for (int i = 0; i < 30; ++i)
    for (const std::string& t : Texts())
      if (t.size() < 1000) corpus.push_back(t + " the quick brown fox jumps over the lazy dog " + std::to_string(i * 7919));
  return corpus;
}

json RunHf(const json& cases, const std::vector<std::vector<int32_t>>& id_lists = {}) {
  testing::TempDir dir;
  std::ofstream(dir / "request.json") << json{{"tokenizers", cases}, {"texts", Texts()}, {"id_lists", id_lists}}.dump();
  const std::string command = std::string(BPTSERVE_PYTHON) + " " + BPTSERVE_HF_TOKENIZER_SCRIPT + " " +
                              (dir / "request.json") + " " + (dir / "results.json");
  if (std::system(command.c_str()) != 0) {
    ADD_FAILURE() << command << " failed (are the Python packages tokenizers and transformers installed?)";
    return json::array();
  }
  std::ifstream in(dir / "results.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

json AddedToken(int id, const std::string& content, bool special, bool lstrip = false, bool rstrip = false,
                bool single_word = false, bool normalized = false) {
  return {{"id", id},           {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
          {"rstrip", rstrip},   {"normalized", normalized}, {"special", special}};
}

// An untrained tokenizer.json: the model's vocabulary is only its special tokens.
json Untrained(json pre_tokenizer, json decoder, json post_processor, json model_extra = json::object()) {
  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                {"ignore_merges", false}, {"vocab", json::object()}, {"merges", json::array()}};
  model.update(model_extra);
  return {{"version", "1.0"},  {"truncation", nullptr},         {"padding", nullptr},
          {"added_tokens", json::array()}, {"normalizer", nullptr}, {"pre_tokenizer", std::move(pre_tokenizer)},
          {"post_processor", std::move(post_processor)}, {"decoder", std::move(decoder)}, {"model", std::move(model)}};
}

json ByteLevel() { return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}; }

json ByteLevelCase(json post_processor) {
  return {{"train", Untrained(ByteLevel(), ByteLevel(), std::move(post_processor)).dump()},
          {"corpus", Corpus()},
          {"vocab_size", 600},
          {"special_tokens", {"<|endoftext|>", "<|begin|>"}},
          {"byte_level_alphabet", true}};
}

std::vector<int32_t> Ids(const json& list) { return list.get<std::vector<int32_t>>(); }

std::unique_ptr<HfTokenizer> ParseOrDie(const std::string& text, const TokenizerConfig& config = {}) {
  auto t = HfTokenizer::Parse(text, "tokenizer.json", config);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

// Every text's ids and decodes agree with HF's.
void ExpectAgreement(const HfTokenizer& t, const json& hf) {
  for (size_t i = 0; i < Texts().size(); ++i) {
    const std::string& text = Texts()[i];
    const std::string shown = text.substr(0, 60);
    const auto ids = t.Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    EXPECT_EQ(*ids, Ids(hf["ids"][i])) << "text " << i << ": '" << shown << "'";
    std::vector<int32_t> prompt(t.prefix_ids().begin(), t.prefix_ids().end());
    prompt.insert(prompt.end(), ids->begin(), ids->end());
    prompt.insert(prompt.end(), t.suffix_ids().begin(), t.suffix_ids().end());
    EXPECT_EQ(prompt, Ids(hf["prompt_ids"][i])) << "text " << i << " with special tokens";
    EXPECT_EQ(*t.Decode(Ids(hf["ids"][i])), hf["decoded"][i].get<std::string>()) << "text " << i;
    EXPECT_EQ(*t.Decode(Ids(hf["prompt_ids"][i]), /*skip_special_tokens=*/true), hf["decoded_skip"][i].get<std::string>())
        << "text " << i;
  }
}

// Added tokens of every kind, put into a trained tokenizer.json by hand (ids past the vocabulary).
std::string WithAddedTokens(const std::string& trained) {
  json j = json::parse(trained);
  const int next = static_cast<int>(j["model"]["vocab"].size());
  j["added_tokens"].push_back(AddedToken(next, "<mask>", true, /*lstrip=*/true, /*rstrip=*/true));
  j["added_tokens"].push_back(AddedToken(next + 1, "<tag>", false, false, /*rstrip=*/true));
  j["added_tokens"].push_back(AddedToken(next + 2, "word", false, false, false, /*single_word=*/true));
  j["added_tokens"].push_back(AddedToken(next + 3, " and", false, false, false, false, /*normalized=*/true));
  return j.dump();
}

// Ids of byte-level tokens and added tokens at random: cut characters, invalid UTF-8 of every kind.
const std::vector<std::vector<int32_t>>& RandomIdLists() {
  static const std::vector<std::vector<int32_t>> lists = [] {
    std::mt19937 rng(11);
    std::vector<std::vector<int32_t>> l(200);
    for (auto& ids : l) {
      ids.resize(1 + rng() % 12);
      for (auto& id : ids) id = static_cast<int32_t>(rng() % 603);  // 600 model tokens, 3 added
    }
    return l;
  }();
  return lists;
}

class HfTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    json cases = json::array();
    cases.push_back(ByteLevelCase(nullptr));
    cases.push_back(ByteLevelCase({{"type", "TemplateProcessing"},
                                   {"single", {{{"SpecialToken", {{"id", "<|begin|>"}, {"type_id", 0}}}},
                                               {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                                   {"pair", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                                   {"special_tokens", {{"<|begin|>", {{"id", "<|begin|>"}, {"ids", {1}}, {"tokens", {"<|begin|>"}}}}}}}));
    const json trained = RunHf(cases);
    ASSERT_EQ(trained.size(), 2u);
    // The same files again with added tokens of every kind, through transformers with a config.
    json second = json::array();
    second.push_back({{"json", WithAddedTokens(trained[0]["json"])}});
    second.push_back({{"json", WithAddedTokens(trained[1]["json"])}});
    second.push_back({{"json", trained[1]["json"]}, {"config", {{"bos_token", "<|begin|>"}, {"eos_token", "<|endoftext|>"},
                                                                 {"add_bos_token", false}, {"add_eos_token", true}}}});
    second.push_back({{"json", trained[0]["json"]}, {"config", {{"bos_token", "<|begin|>"}, {"eos_token", "<|new_eos|>"}}}});
    results_ = new json(trained);
    for (const json& r : RunHf(second, RandomIdLists())) results_->push_back(r);
  }
  static void TearDownTestSuite() { delete results_; }
  static const json& Result(size_t i) { return (*results_)[i]; }
  static json* results_;
};
json* HfTokenizerTest::results_ = nullptr;

TEST_F(HfTokenizerTest, ByteLevelBpeMatchesHf) {
  ASSERT_GE(results_->size(), 6u);
  const auto t = ParseOrDie(Result(0)["json"]);
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->prefix_ids().empty() && t->suffix_ids().empty());
  ExpectAgreement(*t, Result(0));
}

TEST_F(HfTokenizerTest, TemplateProcessingPrefixMatchesHf) {
  ASSERT_GE(results_->size(), 6u);
  const auto t = ParseOrDie(Result(1)["json"]);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::vector<int32_t>(t->prefix_ids().begin(), t->prefix_ids().end()), std::vector<int32_t>{1});
  ExpectAgreement(*t, Result(1));
}

TEST_F(HfTokenizerTest, AddedTokensOfEveryKindMatchHf) {
  ASSERT_GE(results_->size(), 6u);
  for (size_t i : {2u, 3u}) {
    const auto t = ParseOrDie(Result(i)["json"]);
    ASSERT_NE(t, nullptr);
    ExpectAgreement(*t, Result(i));
  }
}

TEST_F(HfTokenizerTest, TokenizerConfigActsAsInTransformers) {
  ASSERT_GE(results_->size(), 6u);
  TokenizerConfig config;
  config.bos_token = "<|begin|>";
  config.eos_token = "<|endoftext|>";
  const auto t = ParseOrDie(Result(4)["json"], config);
  ASSERT_NE(t, nullptr);
  // transformers 5 keeps the file's post-processor whatever add_bos_token/add_eos_token say.
  EXPECT_EQ(std::vector<int32_t>(t->prefix_ids().begin(), t->prefix_ids().end()), std::vector<int32_t>{1});
  EXPECT_TRUE(t->suffix_ids().empty());
  EXPECT_EQ(t->eos_id(), 0);
  ExpectAgreement(*t, Result(4));

  // An eos_token the file lacks becomes a special token of the next id; no post-processor and
  // no add_*_token keep the prompt bare.
  TokenizerConfig added;
  added.bos_token = "<|begin|>";
  added.eos_token = "<|new_eos|>";
  const auto u = ParseOrDie(Result(5)["json"], added);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->eos_id(), u->vocab_size() - 1);
  EXPECT_TRUE(u->IsSpecial(*u->eos_id()));
  ExpectAgreement(*u, Result(5));
}

TEST_F(HfTokenizerTest, RandomIdsDecodeAsHf) {
  ASSERT_GE(results_->size(), 6u);
  const auto t = ParseOrDie(Result(2)["json"]);
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->vocab_size(), 603);
  ASSERT_EQ(Result(2)["decoded_lists"].size(), RandomIdLists().size());
  for (size_t i = 0; i < RandomIdLists().size(); ++i) {
    const auto text = t->Decode(RandomIdLists()[i]);
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    EXPECT_EQ(*text, Result(2)["decoded_lists"][i].get<std::string>()) << "list " << i;
  }
}

// A model directory with tokenizer.json: prompts get the post-processor's special tokens,
// generated text is the decode of the generated ids.
TEST_F(HfTokenizerTest, EngineServesATokenizerJsonModel) {
  ASSERT_GE(results_->size(), 6u);
  testing::TempDir dir;
  json config = testing::SmallConfig();
  config["vocab_size"] = 640;
  testing::WriteModelOrDie(dir.path(), config);
  std::ofstream(dir / "tokenizer.json") << Result(1)["json"].get<std::string>();
  EngineOptions options;
  options.model_dir = dir.path();
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_FALSE((*engine)->model_info().token_ids_mode);
  const auto t = ParseOrDie(Result(1)["json"]);
  ASSERT_NE(t, nullptr);
  const std::string text = Texts()[0];
  const std::vector<int32_t> text_ids = *t->Encode(text);
  std::vector<int32_t> expected = {1};
  expected.insert(expected.end(), text_ids.begin(), text_ids.end());
  EXPECT_EQ(*(*engine)->EncodePrompt(text), expected);
  EXPECT_EQ(*(*engine)->EncodePrompt(text, INT64_MAX, /*add_special_tokens=*/false),
            std::vector<int32_t>(expected.begin() + 1, expected.end()));
  EXPECT_EQ(*(*engine)->Decode(expected, /*skip_special_tokens=*/true), text);
  EXPECT_EQ((*engine)->EncodePrompt(text, static_cast<int64_t>(expected.size()) - 1).status().code(),
            StatusCode::kOutOfRange);
  GenerationRequest r;
  r.prompt = expected;
  r.stopping.max_new_tokens = 6;
  r.stopping.ignore_eos = true;
  const auto result = (*engine)->Generate(r, nullptr);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  std::vector<int32_t> in_vocabulary;
  for (int32_t id : result->token_ids)
    if (id < t->vocab_size()) in_vocabulary.push_back(id);
  EXPECT_EQ(result->text, *t->Decode(in_vocabulary));

  config["vocab_size"] = 500;  // fewer embedding rows than the tokenizer has ids
  testing::WriteModelOrDie(dir.path(), config);
  const auto refused = Engine::Create(options);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("vocab_size 500"), std::string::npos) << refused.status().message();
}

TEST_F(HfTokenizerTest, StreamedTextJoinsToTheFullDecode) {
  ASSERT_GE(results_->size(), 6u);
  const auto t = ParseOrDie(Result(2)["json"]);
  ASSERT_NE(t, nullptr);
  for (const std::string& text : Texts()) {
    if (text.size() > 1000) continue;
    const std::vector<int32_t> ids = *t->Encode(text);
    for (bool skip : {false, true}) {
      IncrementalDetokenizer detok(*t, {}, skip);
      std::string streamed;
      for (int32_t id : ids) {
        auto piece = detok.Push(id);
        ASSERT_TRUE(piece.ok());
        EXPECT_EQ(piece->find("\xEF\xBF\xBD"), std::string::npos) << "a character was cut in '" << text << "'";
        streamed += *piece;
      }
      streamed += *detok.Flush();
      EXPECT_EQ(streamed, *t->Decode(ids, skip));
    }
  }
}

TEST_F(HfTokenizerTest, EncodingStopsPastTheLimit) {
  ASSERT_GE(results_->size(), 6u);
  const auto t = ParseOrDie(Result(0)["json"]);
  ASSERT_NE(t, nullptr);
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "<|endoftext|>" + Texts()[i % 8];
  const auto whole = t->Encode(text);
  ASSERT_TRUE(whole.ok());
  size_t bytes_encoded = 0;
  EXPECT_TRUE(t->Encode(text, whole->size(), &bytes_encoded).ok());
  EXPECT_EQ(bytes_encoded, text.size());
  const auto over = t->Encode(text, whole->size() - 1, &bytes_encoded);
  EXPECT_EQ(over.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(over.status().message().find("more than " + std::to_string(whole->size() - 1) + " tokens"), std::string::npos);
  // Byte-level BPE keeps every byte: past limit x longest token nothing is encoded.
  ASSERT_GT(t->max_piece_bytes(), 0);
  // Far below the count, at a limit the bytes alone do not rule out, it stops after the stretch
  // that passes it.
  const size_t lowest_undecided_limit = text.size() / t->max_piece_bytes() + 1;
  ASSERT_LT(lowest_undecided_limit * 3, whole->size());
  EXPECT_EQ(t->Encode(text, lowest_undecided_limit, &bytes_encoded).status().code(), StatusCode::kOutOfRange);
  EXPECT_GT(bytes_encoded, 0u);
  EXPECT_LT(bytes_encoded, text.size() / 2);
  EXPECT_GE(whole->size() * t->max_piece_bytes(), text.size());
  const std::string long_text(1000 * t->max_piece_bytes() + t->max_piece_bytes(), 'x');
  EXPECT_EQ(t->Encode(long_text, 1000, &bytes_encoded).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(bytes_encoded, 0u);
}

TEST_F(HfTokenizerTest, ThreadsEncodingAtOnceGetTheSerialIds) {
  ASSERT_GE(results_->size(), 6u);
  const auto t = ParseOrDie(Result(2)["json"]);
  ASSERT_NE(t, nullptr);
  std::vector<std::vector<int32_t>> serial;
  for (const std::string& text : Texts()) serial.push_back(*t->Encode(text));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int round = 0; round < 3; ++round)
        for (size_t i = 0; i < Texts().size(); ++i) mismatches[k] += *t->Encode(Texts()[i]) != serial[i];
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// Llama 2's tokenizer.model as transformers converts it to tokenizer.json: HF's ids, and the ids
// the SentencePiece path gives.
TEST(HfTokenizer, ConvertedLlama2MatchesHfAndSentencePiece) {
  struct stat st {};
  if (stat(testing::Llama2TokenizerPath().c_str(), &st) != 0) GTEST_SKIP() << "../shared is absent";
  testing::TempDir dir;
  std::filesystem::copy_file(testing::Llama2TokenizerPath(), dir / "tokenizer.model");
  const json hf = RunHf(json::array({{{"sentencepiece_dir", dir.path()}}}));
  ASSERT_EQ(hf.size(), 1u);
  const auto t = ParseOrDie(hf[0]["json"]);
  ASSERT_NE(t, nullptr);
  ExpectAgreement(*t, hf[0]);
  const auto spm = SentencePieceTokenizer::Load(testing::Llama2TokenizerPath());
  ASSERT_TRUE(spm.ok());
  for (const std::string& text : Texts())
    EXPECT_EQ(*t->Encode(text), *(*spm)->Encode(text)) << "'" << text.substr(0, 60) << "'";
}

TEST(HfTokenizer, DecodingSkipsGapsAndRefusesIdsOutsideTheVocabulary) {
  json j = Untrained(nullptr, nullptr, nullptr);
  j["model"]["vocab"] = {{"a", 0}, {"b", 2}};
  const std::vector<std::vector<int32_t>> id_lists = {{0, 2}, {0, 1, 2}, {1}, {1, 1, 0}};
  const json hf = RunHf(json::array({{{"json", j.dump()}}}), id_lists);
  ASSERT_EQ(hf.size(), 1u);
  const auto t = ParseOrDie(j.dump());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->vocab_size(), 3);
  // No decoder: tokens joined by spaces. Id 1 lies in the vocabulary's gap: HF skips it.
  for (size_t i = 0; i < id_lists.size(); ++i) {
    const auto text = t->Decode(id_lists[i]);
    ASSERT_TRUE(text.ok()) << "ids " << i << ": " << text.status().ToString();
    EXPECT_EQ(*text, hf[0]["decoded_lists"][i].get<std::string>()) << "ids " << i;
  }
  for (int32_t bad : {3, -1}) {
    const auto r = t->Decode(std::vector<int32_t>{0, bad});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("token id " + std::to_string(bad) + " at index 1"), std::string::npos)
        << r.status().message();
  }
  EXPECT_EQ(t->Encode("a\xff").status().code(), StatusCode::kInvalidArgument);
}

// Word-level BPE features HF's byte-level files leave unused, on a hand-made file.
TEST(HfTokenizer, SubwordPrefixSuffixUnknownsAndByteFallbackMatchHf) {
  json cases = json::array();
  const json vocab = {{"<unk>", 0}, {"h", 1}, {"##e", 2}, {"##l", 3}, {"##o</w>", 4}, {"##l</w>", 5}, {"he", 6},
                      {"hel", 7},  {"w", 8}, {"##o", 9}, {"##r", 10}, {"##d</w>", 11}, {"wo", 12}, {"<0x21>", 13},
                      {"<0xC3>", 14}, {"<0xA9>", 15}, {"h</w>", 16}, {"##ll", 17}, {"hello", 18}};
  const json merges = json::array({json::array({"h", "##e"}), json::array({"he", "##l"}), json::array({"w", "##o"}),
                                   json::array({"##l", "##l"})});
  for (const json& extra : {json{{"unk_token", "<unk>"}, {"fuse_unk", true}}, json{{"unk_token", "<unk>"}},
                            json{{"unk_token", "<unk>"}, {"byte_fallback", true}}, json{{"ignore_merges", true}},
                            json{{"unk_token", nullptr}}}) {
    json model = {{"vocab", vocab}, {"merges", merges}, {"continuing_subword_prefix", "##"}, {"end_of_word_suffix", "</w>"}};
    model.update(extra);
    cases.push_back({{"json", Untrained({{"type", "Whitespace"}}, {{"type", "BPEDecoder"}, {"suffix", "</w>"}}, nullptr, model).dump()}});
  }
  const json hf = RunHf(cases);
  ASSERT_EQ(hf.size(), cases.size());
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto t = ParseOrDie(cases[c]["json"]);
    ASSERT_NE(t, nullptr);
    for (size_t i = 0; i < Texts().size(); ++i)
      EXPECT_EQ(*t->Encode(Texts()[i]), Ids(hf[c]["ids"][i])) << "case " << c << " text " << i;
  }
}

TEST(HfTokenizer, DecodersMatchHf) {
  // Metaspace, Replace, ByteFallback, Fuse and Strip, as Llama 2's converted tokenizer chains them.
  json vocab = {{"<unk>", 0}, {"\u2581", 1}, {"a", 2}, {"b", 3}, {"\u2581a", 4}, {"<0xE2>", 5}, {"<0x82>", 6},
                {"<0xAC>", 7}, {"<0xFF>", 8}};
  json cases = json::array();
  const json llama_decoder = {{"type", "Sequence"},
                              {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                            {{"type", "ByteFallback"}},
                                            {{"type", "Fuse"}},
                                            {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  const json metaspace = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  for (const json& decoder : {llama_decoder, metaspace, json{{"type", "ByteFallback"}}})
    cases.push_back({{"json", Untrained(nullptr, decoder, nullptr, {{"vocab", vocab}, {"unk_token", "<unk>"}}).dump()}});
  const std::vector<std::vector<int32_t>> id_lists = {{4, 1, 1, 3, 5, 6, 7, 2}, {1, 1, 4}, {5, 6, 2, 8, 5}, {1}, {}};
  const json hf = RunHf(cases, id_lists);
  ASSERT_EQ(hf.size(), cases.size());
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto t = ParseOrDie(cases[c]["json"]);
    ASSERT_NE(t, nullptr);
    for (size_t i = 0; i < id_lists.size(); ++i)
      EXPECT_EQ(*t->Decode(id_lists[i]), hf[c]["decoded_lists"][i].get<std::string>()) << "decoder " << c << " ids " << i;
  }
}

TEST(HfTokenizer, ErrorsNameTheFileAndThePlaceInIt) {
  const json base = Untrained(nullptr, nullptr, nullptr, {{"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}});
  ASSERT_NE(ParseOrDie(base.dump()), nullptr);
  const auto expect_error = [](const json& j, const std::string& needle) {
    const auto t = HfTokenizer::Parse(j.dump(), "dir/tokenizer.json", {});
    ASSERT_FALSE(t.ok()) << needle;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("dir/tokenizer.json"), std::string::npos) << t.status().message();
    EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status().message();
  };
  json j = base;
  j["model"]["type"] = "WordPiece";
  expect_error(j, "model.type: 'WordPiece' is not supported");
  j = base;
  j["model"]["merges"] = {"a c"};
  expect_error(j, "model.merges[0]: 'c' is not in the vocabulary");
  j = base;
  j["model"]["merges"] = {"b a"};
  expect_error(j, "model.merges[0]: the merged token 'ba'");
  j = base;
  j["model"]["vocab"]["c"] = "3";
  expect_error(j, "model.vocab['c']");
  j = base;
  j["model"]["continuing_subword_prefix"] = "abc";
  expect_error(j, "model.merges[0]: 'b' is shorter than the continuing_subword_prefix");
  j = base;
  j["model"]["vocab"] = {{"a", 0}, {"a\u00e9", 1}};
  j["model"]["merges"] = {"a a\u00e9"};
  j["model"]["continuing_subword_prefix"] = "ab";
  expect_error(j, "model.merges[0]: dropping the first 2 bytes of 'a\u00e9' (the continuing_subword_prefix's length) "
                  "cuts a character in two");
  j = base;
  j["model"]["dropout"] = 0.1;
  expect_error(j, "model.dropout");
  j = base;
  j["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "ByteLevel"}}, {{"type", "CTC"}}}}};
  expect_error(j, "decoder.decoders[1].type: 'CTC' is not supported");
  j = base;
  j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}}},
                         {"special_tokens", json::object()}};
  expect_error(j, "post_processor.single[0]: '<s>' is not in post_processor.special_tokens");
  j = base;
  j["added_tokens"] = {{{"id", 5}}};
  expect_error(j, "added_tokens[0].content: missing");
  j = base;
  j["normalizer"] = {{"type", "NoSuchNormalizer"}};
  expect_error(j, "normalizer");

  const std::string text = base.dump();
  const auto truncated = HfTokenizer::Parse(text.substr(0, text.size() / 2), "dir/tokenizer.json", {});
  EXPECT_EQ(truncated.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(truncated.status().message().find("dir/tokenizer.json"), std::string::npos);
  testing::TempDir dir;
  EXPECT_EQ(HfTokenizer::Load(dir / "absent.json", {}).status().code(), StatusCode::kNotFound);
}

// A component of `type` with `list_key` nesting `depth` Sequences around `leaf`.
json NestedSequences(const json& leaf, const std::string& list_key, int depth) {
  json spec = leaf;
  for (int i = 0; i < depth; ++i) spec = {{"type", "Sequence"}, {list_key, json::array({std::move(spec)})}};
  return spec;
}

TEST(HfTokenizer, SequencesNestAtMost64Deep) {
  const json base = Untrained(nullptr, nullptr, nullptr, {{"vocab", {{"a", 0}}}});
  const struct {
    std::string component, list_key;
    json leaf;
  } cases[] = {
      {"normalizer", "normalizers", {{"type", "NFC"}}},
      {"pre_tokenizer", "pretokenizers", ByteLevel()},
      {"decoder", "decoders", {{"type", "ByteLevel"}}},
      {"post_processor", "processors", {{"type", "ByteLevel"}}},
  };
  for (const auto& c : cases) {
    json j = base;
    j[c.component] = NestedSequences(c.leaf, c.list_key, hf::kMaxSequenceDepth);
    EXPECT_TRUE(HfTokenizer::Parse(j.dump(), "dir/tokenizer.json", {}).ok()) << c.component;
    j[c.component] = NestedSequences(c.leaf, c.list_key, hf::kMaxSequenceDepth + 1);
    const auto t = HfTokenizer::Parse(j.dump(), "dir/tokenizer.json", {});
    ASSERT_FALSE(t.ok()) << c.component;
    std::string where = "dir/tokenizer.json: " + c.component;
    for (int i = 0; i <= hf::kMaxSequenceDepth; ++i) where += "." + c.list_key + "[0]";
    EXPECT_EQ(t.status().message(), where + ": Sequences nest more than 64 deep");
  }
}

// Copying a parsed value and dump() recurse, so a file nested a million deep is refused unparsed.
TEST(HfTokenizer, DeeplyNestedJsonIsRefused) {
  std::string text = Untrained(nullptr, nullptr, nullptr, {{"vocab", {{"a", 0}}}}).dump();
  const std::string key = "\"pre_tokenizer\":null";
  const size_t at = text.find(key);
  ASSERT_NE(at, std::string::npos);
  const size_t depth = 1 << 20;
  text.replace(at, key.size(), "\"pre_tokenizer\":" + std::string(depth, '[') + std::string(depth, ']'));
  const auto t = HfTokenizer::Parse(text, "dir/tokenizer.json", {});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("dir/tokenizer.json: arrays and objects nest more than 256 deep"), std::string::npos)
      << t.status().message();
  // Brackets inside strings are text, not nesting.
  json strings = Untrained(nullptr, nullptr, nullptr, {{"vocab", {{std::string(1000, '['), 0}, {"\\\"[", 1}}}});
  EXPECT_NE(ParseOrDie(strings.dump()), nullptr);
}

TEST(HfTokenizer, LoadPrefersTokenizerJson) {
  testing::TempDir dir;
  std::ofstream(dir / "tokenizer.json") << Untrained(nullptr, nullptr, nullptr, {{"vocab", {{"a", 0}}}}).dump();
  std::ofstream(dir / "tokenizer.model") << "not a sentencepiece model";
  const auto t = Tokenizer::Load(dir.path(), TokenizerConfig{});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_NE(*t, nullptr);
  EXPECT_EQ((*t)->vocab_size(), 1);
}

}  // namespace
}  // namespace bpt
