// Generation through the engine's public API on a model with the demo tokenizer: finish
// reasons, stop strings, streaming, cancellation and request validation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "engine.h"
#include "test_models.h"

namespace bpt {
namespace {

using testing::TempDir;

class GenerationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    nlohmann::json config = testing::SmallConfig();
    config["vocab_size"] = 1000;
    config["max_position_embeddings"] = 512;
    testing::WriteModelOrDie((*dir_) / "model", config, DType::kBF16, 3, 1, testing::DemoTokenizerPath());
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override { engine_ = Make((*dir_) / "model"); }

  static std::unique_ptr<Engine> Make(const std::string& model_dir) {
    EngineOptions options;
    options.model_dir = model_dir;
    options.scheduler.prefill_block = 16;
    options.kv_cache.block_size = 8;
    options.kv_cache.capacity_tokens = 400;
    auto engine = Engine::Create(options);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return std::move(engine).value();
  }

  GenerationRequest Request(int max_new_tokens = 24) {
    GenerationRequest r;
    r.prompt = *engine_->EncodePrompt("A long document about the prefill of a model.");
    r.sampling.temperature = 0;
    r.stopping.max_new_tokens = max_new_tokens;
    r.stopping.ignore_eos = true;
    return r;
  }

  static TempDir* dir_;
  std::unique_ptr<Engine> engine_;
};

TempDir* GenerationTest::dir_ = nullptr;

struct Recorder : GenerationObserver {
  std::vector<std::pair<int64_t, int64_t>> progress;
  std::vector<TokenOutput> tokens;
  int cancel_after_progress = -1;
  int cancel_after_tokens = -1;
  bool OnPrefillProgress(int64_t done, int64_t total) override {
    progress.emplace_back(done, total);
    return static_cast<int>(progress.size()) != cancel_after_progress;
  }
  bool OnToken(const TokenOutput& t) override {
    tokens.push_back(t);
    return static_cast<int>(tokens.size()) != cancel_after_tokens;
  }
};

TEST_F(GenerationTest, EncodePromptAddsBos) {
  const auto ids = *engine_->EncodePrompt("hello");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
}

TEST_F(GenerationTest, StreamsTextProgressAndLengthFinish) {
  Recorder rec;
  const auto request = Request(24);
  auto r = engine_->Generate(request, &rec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->finish_reason, FinishReason::kLength);
  EXPECT_EQ(r->token_ids.size(), 24u);
  ASSERT_EQ(rec.tokens.size(), 24u);
  std::string streamed;
  for (const auto& t : rec.tokens) streamed += t.text;
  EXPECT_EQ(streamed, r->text);
  // The text is the continuation of the prompt, as a whole decode of both shows it.
  auto all = request.prompt;
  all.insert(all.end(), r->token_ids.begin(), r->token_ids.end());
  const std::string whole = *engine_->Decode(all);
  const std::string prompt_text = *engine_->Decode(request.prompt);
  EXPECT_EQ(whole, prompt_text + r->text);
  // Progress: one event per block, increasing, ending at the prompt length.
  const int64_t n = static_cast<int64_t>(request.prompt.size());
  ASSERT_EQ(rec.progress.size(), static_cast<size_t>((n + 15) / 16));
  for (size_t i = 1; i < rec.progress.size(); ++i) EXPECT_GT(rec.progress[i].first, rec.progress[i - 1].first);
  EXPECT_EQ(rec.progress.back(), std::make_pair(n, n));
  EXPECT_EQ(r->prompt_tokens, n);
  EXPECT_GT(r->timings.prefill_s, 0);
  EXPECT_GE(r->timings.time_to_first_token_s, r->timings.prefill_s);
  EXPECT_EQ(engine_->kv_free_tokens(), engine_->kv_capacity_tokens());
}

TEST_F(GenerationTest, SeedMakesSamplingReproducible) {
  auto request = Request(16);
  request.sampling.temperature = 1.0f;
  request.sampling.seed = 99;
  const auto a = engine_->Generate(request, nullptr);
  const auto b = engine_->Generate(request, nullptr);
  request.sampling.seed = 100;
  const auto c = engine_->Generate(request, nullptr);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->token_ids, b->token_ids);
  EXPECT_NE(a->token_ids, c->token_ids);
}

TEST_F(GenerationTest, StopStringEndsGenerationAndIsNotEmitted) {
  const auto free_run = engine_->Generate(Request(40), nullptr);
  ASSERT_TRUE(free_run.ok());
  const std::string& text = free_run->text;
  ASSERT_GE(text.size(), 12u) << "the model produced too little text to cut";
  const std::string stop = text.substr(text.size() / 2, 3);
  auto request = Request(40);
  request.stopping.stop = {stop};
  Recorder rec;
  const auto r = engine_->Generate(request, &rec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kStop);
  EXPECT_EQ(r->text, text.substr(0, text.find(stop)));
  std::string streamed;
  for (const auto& t : rec.tokens) streamed += t.text;
  EXPECT_EQ(streamed, r->text);
}

TEST_F(GenerationTest, StopTokenAndEos) {
  const auto free_run = engine_->Generate(Request(12), nullptr);
  ASSERT_TRUE(free_run.ok());
  const int32_t target = free_run->token_ids[5];
  const size_t first = std::find(free_run->token_ids.begin(), free_run->token_ids.end(), target) -
                       free_run->token_ids.begin();

  auto request = Request(12);
  request.stopping.stop_token_ids = {target};
  auto r = engine_->Generate(request, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kStop);
  EXPECT_EQ(r->token_ids.size(), first + 1);
  EXPECT_EQ(r->token_ids.back(), target);

  // The same token as the model's EOS.
  TempDir eos_dir;
  std::filesystem::copy((*dir_) / "model", eos_dir.path(), std::filesystem::copy_options::recursive);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(eos_dir / "config.json"));
  config["eos_token_id"] = {target, 999};
  std::ofstream(eos_dir / "config.json") << config.dump();
  auto eos_engine = Make(eos_dir.path());
  request = Request(12);
  request.stopping.ignore_eos = false;
  r = eos_engine->Generate(request, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kEos);
  EXPECT_EQ(r->token_ids.size(), first + 1);
  request.stopping.ignore_eos = true;
  r = eos_engine->Generate(request, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kLength);
  EXPECT_EQ(r->token_ids.size(), 12u);
}

// Llama 3's case: config.json names one EOS, generation_config.json the turn's end as well; the
// token only the latter names must end the request too.
TEST_F(GenerationTest, GenerationConfigEosEndsTheTurn) {
  const auto free_run = engine_->Generate(Request(12), nullptr);
  ASSERT_TRUE(free_run.ok());
  const int32_t target = free_run->token_ids[5];
  const size_t first = std::find(free_run->token_ids.begin(), free_run->token_ids.end(), target) -
                       free_run->token_ids.begin();
  TempDir dir;
  std::filesystem::copy((*dir_) / "model", dir.path(), std::filesystem::copy_options::recursive);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  config["eos_token_id"] = 999;
  std::ofstream(dir / "config.json") << config.dump();
  std::ofstream(dir / "generation_config.json") << nlohmann::json{{"eos_token_id", {999, target}}}.dump();
  auto engine = Make(dir.path());
  auto request = Request(12);
  request.stopping.ignore_eos = false;
  auto r = engine->Generate(request, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->finish_reason, FinishReason::kEos);
  EXPECT_EQ(r->token_ids.size(), first + 1);

  EXPECT_FLOAT_EQ(engine->model_info().default_sampling.temperature, 1.0f);  // the file names none

  // A value the file gets wrong is refused by file and key, never served as something else.
  EngineOptions options;
  options.model_dir = dir.path();
  for (const auto& [bad, key] : std::vector<std::pair<nlohmann::json, std::string>>{
           {{{"eos_token_id", "128009"}}, "eos_token_id"},
           {{{"temperature", -0.5}}, "temperature"},
           {{{"top_p", 0.0}}, "top_p"},
           {{{"top_k", "50"}}, "top_k"}}) {
    std::ofstream(dir / "generation_config.json") << bad.dump();
    auto refused = Engine::Create(options);
    ASSERT_FALSE(refused.ok()) << bad.dump();
    EXPECT_NE(refused.status().message().find("generation_config.json"), std::string::npos) << refused.status().ToString();
    EXPECT_NE(refused.status().message().find(key), std::string::npos) << refused.status().ToString();
  }
}

TEST_F(GenerationTest, CancellationDuringPrefillAndDecodeFreesTheCache) {
  auto request = Request(30);
  for (int i = 0; i < 6; ++i) request.prompt.insert(request.prompt.end(), request.prompt.begin(), request.prompt.begin() + 10);
  Recorder during_prefill;
  during_prefill.cancel_after_progress = 1;
  auto r = engine_->Generate(request, &during_prefill);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(during_prefill.progress.size(), 1u) << "stopped within one block";
  EXPECT_TRUE(r->token_ids.empty());
  EXPECT_EQ(engine_->kv_free_tokens(), engine_->kv_capacity_tokens());

  Recorder during_decode;
  during_decode.cancel_after_tokens = 3;
  r = engine_->Generate(request, &during_decode);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(r->token_ids.size(), 3u);
  EXPECT_EQ(engine_->kv_free_tokens(), engine_->kv_capacity_tokens());
}

TEST_F(GenerationTest, InvalidRequestsNameTheFieldAndLimit) {
  auto expect = [&](GenerationRequest r, StatusCode code, const std::string& fragment) {
    const auto result = engine_->Generate(r, nullptr);
    EXPECT_EQ(result.status().code(), code) << result.status().ToString();
    EXPECT_NE(result.status().message().find(fragment), std::string::npos) << result.status().ToString();
  };
  auto r = Request();
  r.prompt.clear();
  expect(r, StatusCode::kInvalidArgument, "prompt is empty");
  r = Request();
  r.prompt[2] = 1000;
  expect(r, StatusCode::kInvalidArgument, "token_ids[2] = 1000 is outside the vocabulary [0, 1000)");
  r.prompt[2] = -4;
  expect(r, StatusCode::kInvalidArgument, "token_ids[2] = -4");
  r = Request();
  r.prompt.assign(512, 5);
  expect(r, StatusCode::kInvalidArgument, "context limit is 512");
  r = Request();
  r.prompt.assign(300, 5);
  r.stopping.max_new_tokens = 250;
  expect(r, StatusCode::kInvalidArgument, "exceeds the context limit of 512");
  r.stopping.max_new_tokens = 150;  // within the model's 512, beyond the KV pool's 400
  expect(r, StatusCode::kResourceExhausted, "KV cache capacity of 400 tokens");
  r = Request();
  r.stopping.max_new_tokens = 0;
  expect(r, StatusCode::kInvalidArgument, "max_new_tokens");
  r = Request();
  r.sampling.temperature = -1;
  expect(r, StatusCode::kInvalidArgument, "temperature");
  r = Request();
  r.stopping.stop.assign(17, "x");
  expect(r, StatusCode::kInvalidArgument, "stop has 17 strings");
  EXPECT_EQ(engine_->kv_free_tokens(), engine_->kv_capacity_tokens());
}

TEST(TokenIdsMode, ServesIdsAndRefusesText) {
  TempDir dir;
  testing::WriteModelOrDie(dir.path(), testing::SmallConfig());
  EngineOptions options;
  options.model_dir = dir.path();
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok());
  EXPECT_TRUE((*engine)->model_info().token_ids_mode);
  EXPECT_EQ((*engine)->EncodePrompt("text").status().code(), StatusCode::kFailedPrecondition);
  GenerationRequest r;
  r.prompt = {1, 5, 9};
  r.stopping.max_new_tokens = 4;
  r.stopping.ignore_eos = true;
  r.stopping.stop = {"x"};
  EXPECT_EQ((*engine)->Generate(r, nullptr).status().code(), StatusCode::kFailedPrecondition);
  r.stopping.stop.clear();
  auto result = (*engine)->Generate(r, nullptr);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->token_ids.size(), 4u);
  EXPECT_TRUE(result->text.empty());
}

}  // namespace
}  // namespace bpt

namespace bpt {
namespace {

// Models often pad the embedding beyond the tokenizer's pieces; sampling such an id must not fail.
TEST(PaddedVocabulary, IdsPastTheTokenizerHaveNoText) {
  TempDir dir;
  nlohmann::json config = testing::SmallConfig();
  config["vocab_size"] = 1400;  // the demo tokenizer has 1000 pieces
  testing::WriteModelOrDie(dir.path(), config, DType::kBF16, 3, 1, testing::DemoTokenizerPath());
  EngineOptions options;
  options.model_dir = dir.path();
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  GenerationRequest r;
  r.prompt = *(*engine)->EncodePrompt("padded");
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 5;
  r.stopping.max_new_tokens = 64;
  r.stopping.ignore_eos = true;
  auto result = (*engine)->Generate(r, nullptr);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  std::vector<int32_t> with_text;
  for (int32_t id : result->token_ids)
    if (id < 1000) with_text.push_back(id);
  ASSERT_LT(with_text.size(), result->token_ids.size()) << "the draw never reached a padded id";
  auto all = r.prompt;
  all.insert(all.end(), with_text.begin(), with_text.end());
  EXPECT_EQ(*(*engine)->Decode(all), *(*engine)->Decode(r.prompt) + result->text);
}

}  // namespace
}  // namespace bpt

namespace bpt {
namespace {

// A second question about the same document reuses its KV blocks and answers the same.
TEST_F(GenerationTest, PrefixCacheSkipsTheSharedDocument) {
  std::vector<int32_t> document = *engine_->EncodePrompt(std::string(
      "Long documents are the reason bptserve exists. A contract, a book, a year of logs. ") + "Question one?");
  const std::vector<int32_t> chunk(document.begin() + 1, document.end());
  while (document.size() < 150) document.insert(document.end(), chunk.begin(), chunk.end());
  auto ask = [&](const std::vector<int32_t>& prompt, bool cache) {
    GenerationRequest r;
    r.prompt = prompt;
    r.sampling.temperature = 0;
    r.stopping.max_new_tokens = 12;
    r.stopping.ignore_eos = true;
    r.use_prefix_cache = cache;
    auto result = engine_->Generate(r, nullptr);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return std::move(result).value();
  };
  const auto uncached = ask(document, false);
  EXPECT_EQ(uncached.cached_prompt_tokens, 0);
  const auto first = ask(document, true);
  EXPECT_EQ(first.cached_prompt_tokens, 0) << "bypassed requests publish nothing";
  const auto second = ask(document, true);
  const int64_t full_blocks = (static_cast<int64_t>(document.size()) - 1) / 8 * 8;  // kv_block_size 8
  EXPECT_EQ(second.cached_prompt_tokens, full_blocks);
  EXPECT_EQ(second.token_ids, uncached.token_ids);
  EXPECT_EQ(second.text, uncached.text);

  // Another question on the same document shares the document's blocks.
  auto other = document;
  other.back() = 77;
  other.push_back(78);
  const auto follow_up = ask(other, true);
  EXPECT_GE(follow_up.cached_prompt_tokens, (static_cast<int64_t>(document.size()) - 1) / 8 * 8);
  EXPECT_EQ(follow_up.token_ids, ask(other, false).token_ids);
  EXPECT_EQ(engine_->kv_free_tokens(), engine_->kv_capacity_tokens());
}

// Under a pool too small to keep everything, eviction loses reuse, never correctness: every answer
// equals the one without the cache, while the hits follow LRU eviction exactly. The pool holds 24
// blocks of 4 tokens; a request (60 prompt tokens + 6 generated) holds 17 at its peak and leaves 16
// cached (the last generated token is never computed); a full hit is the 14 blocks before the
// prompt's last token.
TEST(PrefixCacheEviction, SmallPoolStaysCorrect) {
  TempDir dir;
  nlohmann::json config = testing::SmallConfig();
  testing::WriteModelOrDie(dir.path(), config, DType::kBF16, 9);
  EngineOptions options;
  options.model_dir = dir.path();
  options.scheduler.prefill_block = 16;
  options.kv_cache.block_size = 4;
  options.kv_cache.capacity_tokens = 96;
  auto engine = Engine::Create(options);
  auto reference = Engine::Create(options);  // its requests bypass the cache, so it never evicts
  ASSERT_TRUE(engine.ok() && reference.ok());
  std::mt19937 rng(2);
  std::vector<std::vector<int32_t>> docs(3);
  for (auto& d : docs)
    for (int i = 0; i < 60; ++i) d.push_back(static_cast<int32_t>(rng() % 97));
  auto request = [&](int doc, bool cache) {
    GenerationRequest r;
    r.prompt = docs[doc];
    r.sampling.temperature = 0;
    r.stopping.max_new_tokens = 6;
    r.stopping.ignore_eos = true;
    r.use_prefix_cache = cache;
    return r;
  };
  struct Ask {
    int doc;
    int64_t cached;  // prompt tokens the prefix cache must supply
    const char* why;
  };
  const std::vector<Ask> asks = {
      {0, 0, "cold"},
      {0, 56, "a repeat hits every block before the prompt's last token"},
      {1, 0, "cold: takes the 8 free blocks and evicts 9 of doc 0's, least recently used first"},
      {0, 28, "doc 0 lost its tail, not its head: its first 7 blocks remain"},
      {2, 0, "cold: evicts the rest of doc 1's old blocks and more"},
      {1, 0, "evicted: every block of doc 1 went to docs 0 and 2"},
      {1, 56, "a repeat hits again"},
  };
  for (size_t i = 0; i < asks.size(); ++i) {
    const Ask& a = asks[i];
    auto cached = (*engine)->Generate(request(a.doc, true), nullptr);
    auto plain = (*reference)->Generate(request(a.doc, false), nullptr);
    ASSERT_TRUE(cached.ok() && plain.ok());
    EXPECT_EQ(cached->cached_prompt_tokens, a.cached) << "request " << i << " (doc " << a.doc << "): " << a.why;
    EXPECT_EQ(plain->cached_prompt_tokens, 0);
    EXPECT_EQ(cached->token_ids, plain->token_ids) << "request " << i;
    EXPECT_EQ((*engine)->kv_free_tokens(), 96) << "cached blocks no request holds can all be taken";
  }
}

}  // namespace
}  // namespace bpt
