#include "sentencepiece_tokenizer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <random>

#include "incremental_detokenizer.h"
#include "test_models.h"

namespace bpt {
namespace {

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    const int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (int k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += len;
  }
  return true;
}

const std::vector<std::string>& Samples() {
  static const std::vector<std::string> samples = {
      "",
      "Hello world, long documents.",
      " leading space",
      "   three leading spaces and  double  spaces ",
      "tabs\tand\nnewlines\n\n",
      "café naïve straße déjà vu",
      "日本語のテキストと中文",
      "emoji 🙂🚀 and flags 🇫🇷 and a family 👨‍👩‍👧",
      "rare: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ ᚠᛇᚻ",
      "code: int main() { return a[i] * b[i]; }",
  };
  return samples;
}

class TokenizerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string path = GetParam() == "demo" ? testing::DemoTokenizerPath() : testing::Llama2TokenizerPath();
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) GTEST_SKIP() << "no tokenizer at " << path;
    auto t = SentencePieceTokenizer::Load(path);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tokenizer_ = std::move(t).value();
  }
  std::unique_ptr<SentencePieceTokenizer> tokenizer_;
};

TEST_P(TokenizerTest, RoundTrips) {
  for (const auto& text : Samples()) {
    auto ids = tokenizer_->Encode(text);
    ASSERT_TRUE(ids.ok());
    auto back = tokenizer_->Decode(*ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text);
  }
  EXPECT_TRUE(tokenizer_->Encode("")->empty());
}

TEST_P(TokenizerTest, ByteFallbackCoversUnseenCharacters) {
  auto ids = tokenizer_->Encode("ꙮ");  // not a piece of either vocabulary
  ASSERT_TRUE(ids.ok());
  EXPECT_GE(ids->size(), 3u);  // three UTF-8 bytes, each its own piece
  EXPECT_EQ(*tokenizer_->Decode(*ids), "ꙮ");
}

TEST_P(TokenizerTest, OutOfVocabularyIdIsAnError) {
  const std::vector<int32_t> ids = {5, tokenizer_->vocab_size()};
  const auto r = tokenizer_->Decode(ids);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("index 1"), std::string::npos) << r.status().message();
}

TEST_P(TokenizerTest, StreamedPiecesAreValidAndJoinToTheFullDecode) {
  for (const auto& text : Samples()) {
    const auto ids = *tokenizer_->Encode(text);
    for (const std::vector<int32_t>& context : {std::vector<int32_t>{}, *tokenizer_->Encode("Prompt says")}) {
      IncrementalDetokenizer detok(*tokenizer_, context, /*skip_special_tokens=*/false);
      std::string streamed;
      for (int32_t id : ids) {
        auto piece = detok.Push(id);
        ASSERT_TRUE(piece.ok());
        EXPECT_TRUE(IsValidUtf8(*piece)) << "piece cut a character in '" << text << "'";
        streamed += *piece;
      }
      streamed += *detok.Flush();
      auto all = context;
      all.insert(all.end(), ids.begin(), ids.end());
      const std::string full = *tokenizer_->Decode(all);
      const std::string before = *tokenizer_->Decode(context);
      ASSERT_EQ(full.compare(0, before.size(), before), 0);
      EXPECT_EQ(streamed, full.substr(before.size())) << "context size " << context.size();
    }
  }
}

TEST_P(TokenizerTest, RandomIdsStreamToTheFullDecode) {
  std::mt19937 rng(9);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<int32_t> ids(1 + rng() % 40);
    // Byte pieces (ids 3..258 in both models) half the time, to cut characters at random.
    for (auto& id : ids) id = rng() % 2 ? 3 + rng() % 256 : rng() % tokenizer_->vocab_size();
    IncrementalDetokenizer detok(*tokenizer_, {}, /*skip_special_tokens=*/false);
    std::string streamed;
    for (int32_t id : ids) streamed += *detok.Push(id);
    streamed += *detok.Flush();
    EXPECT_EQ(streamed, *tokenizer_->Decode(ids));
  }
}

// A long text from every sample, glued with runs of spaces, words and digits of random lengths,
// so chunk cuts land everywhere a cut may fall.
std::string LongMixedText(size_t min_bytes) {
  std::mt19937 rng(7);
  std::string text;
  while (text.size() < min_bytes) {
    text += Samples()[rng() % Samples().size()];
    text += std::string(rng() % 4, ' ');
    if (rng() % 5 == 0) text += std::to_string(rng());
    if (rng() % 50 == 0) text += std::string(1000 + rng() % 3000, 'x');  // one long word
  }
  return text;
}

TEST_P(TokenizerTest, ChunkedEncodingGivesTheWholeTextsIds) {
  ASSERT_TRUE(tokenizer_->splits_before_spaces()) << "both models normalize by identity and keep spaces";
  const std::string text = LongMixedText(150 * 1024);
  const auto whole = tokenizer_->EncodeInChunks(text, Tokenizer::kNoLimit, Tokenizer::kNoLimit, nullptr);
  ASSERT_TRUE(whole.ok());
  for (size_t chunk_bytes : {size_t{1}, size_t{7}, size_t{100}, size_t{4096}, SentencePieceTokenizer::kChunkBytes}) {
    const auto chunked = tokenizer_->EncodeInChunks(text, Tokenizer::kNoLimit, chunk_bytes, nullptr);
    ASSERT_TRUE(chunked.ok()) << chunked.status().ToString();
    EXPECT_TRUE(*chunked == *whole) << "chunks of " << chunk_bytes << " bytes: " << chunked->size() << " ids vs "
                                    << whole->size();
  }
}

TEST_P(TokenizerTest, EncodingStopsPastTheLimit) {
  const std::string text = LongMixedText(300 * 1024);
  const auto whole = tokenizer_->Encode(text);
  ASSERT_TRUE(whole.ok());
  EXPECT_TRUE(tokenizer_->Encode(text, whole->size()).ok());
  size_t bytes_encoded = 0;
  const auto over = tokenizer_->Encode(text, whole->size() - 1, &bytes_encoded);
  EXPECT_EQ(bytes_encoded, text.size()) << "one id short of the whole text is known only at its end";
  EXPECT_EQ(over.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(over.status().message().find("more than " + std::to_string(whole->size() - 1) + " tokens"),
            std::string::npos);
  // No model text packs more bytes into an id than the longest piece holds.
  ASSERT_GT(tokenizer_->max_piece_bytes(), 0);
  EXPECT_GE(whole->size() * tokenizer_->max_piece_bytes(), text.size());
  // Past limit x longest piece the answer needs no tokenization at all; right below it, it does.
  const size_t limit = 1000;
  const std::string just_over(limit * tokenizer_->max_piece_bytes() + tokenizer_->max_piece_bytes(), 'x');
  EXPECT_EQ(tokenizer_->Encode(just_over, limit, &bytes_encoded).status().code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(bytes_encoded, 0u);
  const std::string just_under = text.substr(0, limit * tokenizer_->max_piece_bytes());
  EXPECT_EQ(tokenizer_->Encode(just_under, limit, &bytes_encoded).status().code(),
            StatusCode::kOutOfRange);
  EXPECT_GT(bytes_encoded, 0u);
  // Far past a limit that the bytes alone do not rule out, it stops after the chunk that passes
  // it, not at the end of the text.
  const size_t lowest_undecided_limit = text.size() / tokenizer_->max_piece_bytes() + 1;
  ASSERT_LT(lowest_undecided_limit * 3, whole->size());
  EXPECT_EQ(tokenizer_->Encode(text, lowest_undecided_limit, &bytes_encoded).status().code(),
            StatusCode::kOutOfRange);
  EXPECT_GT(bytes_encoded, 0u);
  EXPECT_LT(bytes_encoded, text.size() / 2);
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerTest, ::testing::Values("demo", "llama2"),
                         [](const auto& info) { return info.param; });

TEST(Llama2Tokenizer, KnownIds) {
  struct stat st {};
  if (stat(testing::Llama2TokenizerPath().c_str(), &st) != 0) GTEST_SKIP() << "../shared is absent";
  auto t = SentencePieceTokenizer::Load(testing::Llama2TokenizerPath());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->vocab_size(), 32000);
  EXPECT_EQ((*t)->bos_id(), 1);
  EXPECT_EQ((*t)->eos_id(), 2);
  EXPECT_EQ(std::vector<int32_t>((*t)->prefix_ids().begin(), (*t)->prefix_ids().end()), std::vector<int32_t>{1});
  EXPECT_TRUE((*t)->IsSpecial(0) && (*t)->IsSpecial(1) && (*t)->IsSpecial(2) && !(*t)->IsSpecial(15043));
  EXPECT_EQ(*(*t)->Decode(std::vector<int32_t>{1, 15043, 0, 2}, /*skip_special_tokens=*/true), "Hello");
  EXPECT_EQ(*(*t)->Encode("Hello world, long documents."),
            (std::vector<int32_t>{15043, 3186, 29892, 1472, 10701, 29889}));
}

TEST(Llama2Tokenizer, ConfiguredEosNamesAPiece) {
  struct stat st {};
  if (stat(testing::Llama2TokenizerPath().c_str(), &st) != 0) GTEST_SKIP() << "../shared is absent";
  TokenizerConfig config;
  config.eos_token = "<unk>";
  EXPECT_EQ((*SentencePieceTokenizer::Load(testing::Llama2TokenizerPath(), config))->eos_id(), 0);
  config.eos_token = "no such piece";
  EXPECT_EQ((*SentencePieceTokenizer::Load(testing::Llama2TokenizerPath(), config))->eos_id(), 2);
}

TEST(Tokenizer, DirectoryWithoutTokenizerFilesHasNone) {
  testing::TempDir dir;
  const auto none = Tokenizer::Load(dir.path(), TokenizerConfig{});
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(*none, nullptr);
}

TEST(Tokenizer, MissingOrCorruptModelIsAnError) {
  testing::TempDir dir;
  EXPECT_EQ(SentencePieceTokenizer::Load(dir / "absent.model").status().code(), StatusCode::kNotFound);
  FILE* f = fopen((dir / "bad.model").c_str(), "wb");
  fputs("not a sentencepiece model", f);
  fclose(f);
  const auto bad = SentencePieceTokenizer::Load(dir / "bad.model");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
}

}  // namespace
}  // namespace bpt
