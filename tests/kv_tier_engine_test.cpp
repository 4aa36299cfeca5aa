// The KV tiers through the engine: a document's KV written to disk and Redis comes back, after a
// restart or on another replica, and the answer is exactly the recomputed one (on the CPU the
// chunk is a copy, so bit for bit: the same tokens and the same logprobs). Corrupt, truncated,
// foreign and forged chunks are dropped and recomputed; a tier that fails or is too small
// degrades to recomputation; concurrent requests each end once and leak no block.
#include <gtest/gtest.h>

#include <filesystem>
#include <algorithm>
#include <fstream>
#include <map>
#include <random>

#include "engine.h"
#include "redis_test_server.h"
#include "temp_dir.h"
#include "test_models.h"

namespace bpt {
namespace {

using testing::RedisTestServer;
using testing::TempDir;
namespace fs = std::filesystem;

constexpr int kBlock = 8;
constexpr int kChunk = 32;
constexpr int64_t kDocTokens = 150;  // 4 whole chunks (128 tokens) before the last token
constexpr int64_t kChunkedTokens = (kDocTokens - 1) / kChunk * kChunk;
constexpr auto kFar = std::chrono::hours(1);

std::vector<int32_t> Document(uint32_t seed, int64_t length = kDocTokens) {
  std::mt19937 rng(seed);
  std::vector<int32_t> doc;
  for (int64_t i = 0; i < length; ++i) doc.push_back(static_cast<int32_t>(rng() % 97));
  return doc;
}

// A generated token with its logprob and its top alternatives: what "the same answer" compares.
struct Answer {
  GenerationResult result;
  std::vector<float> logprobs;
  std::vector<std::vector<std::pair<int32_t, float>>> top;
};

struct Recorder : GenerationObserver {
  Answer answer;
  int finished = 0;
  std::optional<Status> error;
  bool OnToken(const TokenOutput& t) override {
    answer.logprobs.push_back(t.logprob);
    answer.top.push_back(t.top_logprobs);
    return true;
  }
  void OnFinished(const StatusOr<GenerationResult>& r) override {
    ++finished;
    if (r.ok()) answer.result = *r;
    else error = r.status();
  }
};

GenerationRequest Ask(const std::vector<int32_t>& prompt, const std::string& salt = "") {
  GenerationRequest r;
  r.prompt = prompt;
  r.sampling.temperature = 0;
  r.sampling.top_logprobs = 3;
  r.stopping.max_new_tokens = 6;
  r.stopping.ignore_eos = true;
  r.cache_salt = salt;
  return r;
}

Answer Answered(Engine& engine, const GenerationRequest& request) {
  Recorder recorder;
  auto result = engine.Generate(request, &recorder);
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(recorder.finished, 1);
  return recorder.answer;
}

void ExpectSameAnswer(const Answer& got, const Answer& want, const std::string& what) {
  EXPECT_EQ(got.result.token_ids, want.result.token_ids) << what;
  EXPECT_EQ(got.logprobs, want.logprobs) << what << ": logprobs must be bit-identical (a copy of the KV)";
  EXPECT_EQ(got.top, want.top) << what;
}

class KvTierEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteModelOrDie(model_.path(), testing::SmallConfig(), DType::kF32, 5);
    std::ofstream(keys_ / "key") << "0123456789abcdef-tier-key\n";
    std::ofstream(keys_ / "other-key") << "another-key-of-16-bytes-or-more\n";
  }
  EngineOptions Options() const {
    EngineOptions o;
    o.model_dir = model_.path();
    o.device = "cpu";
    o.scheduler.prefill_block = 16;
    o.kv_cache.block_size = kBlock;
    o.kv_cache.capacity_tokens = 1024;
    o.kv_tiers.chunk_tokens = kChunk;
    return o;
  }
  EngineOptions WithDisk(double gib = 1.0) const {
    EngineOptions o = Options();
    o.kv_tiers.disk_dir = disk_.path() + "/tier";
    o.kv_tiers.disk_gib = gib;
    return o;
  }
  std::unique_ptr<Engine> Create(const EngineOptions& o) {
    auto engine = Engine::Create(o);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    return engine.ok() ? std::move(engine).value() : nullptr;
  }
  // The recomputed answer: no cache, no tiers.
  Answer Reference(const std::vector<int32_t>& prompt) {
    auto engine = Create(Options());
    GenerationRequest r = Ask(prompt);
    r.use_prefix_cache = false;
    return Answered(*engine, r);
  }
  std::vector<fs::path> ChunkFiles() const {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(disk_.path() + "/tier"))
      if (e.path().extension() == ".kv") files.push_back(e.path());
    return files;
  }
  static void Flush(Engine& engine) { ASSERT_TRUE(engine.FlushKvTiers(std::chrono::steady_clock::now() + kFar)); }

  TempDir model_, disk_, keys_;
};

TEST_F(KvTierEngineTest, RestartAnswersFromDiskExactly) {
  const auto doc = Document(1);
  const Answer want = Reference(doc);
  {
    auto first = Create(WithDisk());
    ASSERT_EQ(first->model_info().kv_tiers, "disk");
    const Answer cold = Answered(*first, Ask(doc));
    EXPECT_EQ(cold.result.cached_prompt_tokens, 0);
    ExpectSameAnswer(cold, want, "cold");
    Flush(*first);
    EXPECT_EQ(ChunkFiles().size(), static_cast<size_t>(kChunkedTokens / kChunk));
    const KvTierStats stats = first->TakeKvTierStats();
    ASSERT_EQ(stats.tiers.size(), 1u);
    EXPECT_EQ(stats.tiers[0].store_errors, 0);
    EXPECT_EQ(stats.tiers[0].store_seconds.size(), static_cast<size_t>(kChunkedTokens / kChunk));
    EXPECT_GT(stats.tiers[0].bytes_used, 0);
  }
  auto restarted = Create(WithDisk());
  const Answer warm = Answered(*restarted, Ask(doc));
  EXPECT_EQ(warm.result.cached_prompt_tokens, kChunkedTokens);
  EXPECT_EQ(warm.result.cached_from.disk, kChunkedTokens);
  EXPECT_EQ(warm.result.cached_from.pool, 0);
  EXPECT_GT(warm.result.timings.kv_load_s, 0);
  ExpectSameAnswer(warm, want, "from disk after a restart");
  const KvTierStats stats = restarted->TakeKvTierStats();
  EXPECT_EQ(stats.tiers[0].hit_tokens, kChunkedTokens);
  // A second question: the pool has it now.
  const Answer again = Answered(*restarted, Ask(doc));
  EXPECT_EQ(again.result.cached_from.pool, (kDocTokens - 1) / kBlock * kBlock);
  EXPECT_EQ(again.result.cached_from.disk, 0);
  ExpectSameAnswer(again, want, "pool hit");
  Flush(*restarted);
  EXPECT_EQ(restarted->kv_free_tokens(), restarted->kv_capacity_tokens()) << "no block held or leaked";
}

TEST_F(KvTierEngineTest, FreshReplicaAnswersFromRedisExactly) {
  auto redis = RedisTestServer::Start("redis-pass");
  if (redis == nullptr) GTEST_SKIP() << "redis-server is not installed";
  const auto doc = Document(2);
  const Answer want = Reference(doc);
  std::ofstream(keys_ / "redis-password") << "redis-pass\n";
  EngineOptions o = Options();
  o.kv_tiers.remote = redis->url();
  o.kv_tiers.remote_password_file = keys_ / "redis-password";
  o.kv_tiers.key_file = keys_ / "key";
  {
    auto writer = Create(o);
    ASSERT_EQ(writer->model_info().kv_tiers, "remote");
    ExpectSameAnswer(Answered(*writer, Ask(doc)), want, "cold");
    Flush(*writer);
  }
  EXPECT_EQ(redis->Cli({"DBSIZE"}), std::to_string(kChunkedTokens / kChunk));
  auto replica = Create(o);
  const Answer warm = Answered(*replica, Ask(doc));
  EXPECT_EQ(warm.result.cached_from.remote, kChunkedTokens);
  ExpectSameAnswer(warm, want, "from redis on a fresh replica");

  // A replica under another tier key (a rotated one) has chunks of its own: it neither reads
  // these nor takes them for forged.
  EngineOptions rotated_options = o;
  rotated_options.kv_tiers.key_file = keys_ / "other-key";
  auto rotated = Create(rotated_options);
  const Answer recomputed = Answered(*rotated, Ask(doc));
  EXPECT_EQ(recomputed.result.cached_prompt_tokens, 0);
  ExpectSameAnswer(recomputed, want, "another key recomputes");
  EXPECT_EQ(rotated->TakeKvTierStats().dropped[3], 0);
  Flush(*rotated);
  EXPECT_EQ(redis->Cli({"DBSIZE"}), std::to_string(2 * kChunkedTokens / kChunk));
  EXPECT_EQ(Answered(*Create(rotated_options), Ask(doc)).result.cached_from.remote, kChunkedTokens);

  // Chunks planted under this key's names without it (here: the other key's, renamed) fail
  // their HMAC: dropped, counted, recomputed.
  const std::string ours = redis->Cli({"KEYS", "bptkv:*"});
  std::vector<std::string> names;
  for (size_t at = 0; at < ours.size();) {
    const size_t end = std::min(ours.find('\n', at), ours.size());
    names.push_back(ours.substr(at, end - at));
    at = end + 1;
  }
  ASSERT_EQ(names.size(), static_cast<size_t>(2 * kChunkedTokens / kChunk));
  std::sort(names.begin(), names.end());  // pair[0] below is always the same key's
  std::map<std::string, std::vector<std::string>> by_hash;  // chunk hex -> its names, one per key
  for (const auto& n : names) by_hash[n.substr(n.rfind(':') + 1)].push_back(n);
  for (const auto& [hash, pair] : by_hash) {
    ASSERT_EQ(pair.size(), 2u) << hash;
    redis->Cli({"COPY", pair[0], pair[1], "REPLACE"});  // pair[1]'s key now names chunks it never signed
  }
  auto victim = Create(o);
  auto other_victim = Create(rotated_options);
  const Answer a = Answered(*victim, Ask(doc));
  const Answer b = Answered(*other_victim, Ask(doc));
  ExpectSameAnswer(a, want, "forged chunks recomputed");
  ExpectSameAnswer(b, want, "forged chunks recomputed");
  EXPECT_EQ(victim->TakeKvTierStats().dropped[3] + other_victim->TakeKvTierStats().dropped[3], 1)
      << "the first chunk of one of the two fails its HMAC; its load stops there";

  // Redis evicts by its own LRU: a chunk it dropped is written again by the next answer, even one
  // from the pool.
  redis->Cli({"FLUSHALL"});
  ExpectSameAnswer(Answered(*rotated, Ask(doc)), want, "pool hit after Redis lost the chunks");
  Flush(*rotated);
  EXPECT_EQ(redis->Cli({"DBSIZE"}), std::to_string(kChunkedTokens / kChunk));
}

TEST_F(KvTierEngineTest, RedisWithoutAnHmacKeyIsRefused) {
  EngineOptions o = Options();
  o.kv_tiers.remote = "redis://127.0.0.1:1";
  const auto engine = Engine::Create(o);
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.status().message().find("kv_tier_key_file"), std::string::npos) << engine.status().ToString();
}

// The TLS options reach the Redis tier: refused without rediss://, then each one checked by a
// Redis that asks for client certificates, and the chunks written over TLS.
TEST_F(KvTierEngineTest, RedisOverTlsWithClientCertificates) {
  EngineOptions o = Options();
  o.kv_tiers.key_file = keys_ / "key";
  o.kv_tiers.remote = "redis://127.0.0.1:1";
  o.kv_tiers.remote_tls_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  auto refused = Engine::Create(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("kv_remote_tls_ca_file"), std::string::npos) << refused.status().ToString();

  auto redis = RedisTestServer::StartTls("", /*client_certificates=*/true);
  if (redis == nullptr) GTEST_SKIP() << "redis-server or openssl is not installed";
  o.kv_tiers.remote = redis->tls_url();
  o.kv_tiers.remote_tls_ca_file = redis->ca_file();
  o.kv_tiers.remote_tls_server_name = "redis.example.com";
  refused = Engine::Create(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("hostname mismatch"), std::string::npos) << refused.status().ToString();
  o.kv_tiers.remote_tls_server_name = "localhost";
  refused = Engine::Create(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("client certificate"), std::string::npos) << refused.status().ToString();
  o.kv_tiers.remote_tls_cert_file = redis->client_cert_file();
  o.kv_tiers.remote_tls_key_file = redis->client_key_file();
  auto engine = Create(o);
  ASSERT_NE(engine, nullptr);
  const auto doc = Document(2);
  ExpectSameAnswer(Answered(*engine, Ask(doc)), Reference(doc), "written to Redis over TLS");
  Flush(*engine);
  EXPECT_EQ(redis->Cli({"DBSIZE"}), std::to_string(kChunkedTokens / kChunk));
}

TEST_F(KvTierEngineTest, RedisStoppedMidRunDegradesToRecomputeAndRecovers) {
  auto redis = RedisTestServer::Start();
  if (redis == nullptr) GTEST_SKIP() << "redis-server is not installed";
  EngineOptions redis_only = Options();
  redis_only.kv_tiers.remote = redis->url();
  redis_only.kv_tiers.remote_timeout_ms = 500;
  redis_only.kv_tiers.key_file = keys_ / "key";
  EngineOptions o = WithDisk();
  o.kv_tiers.remote = redis_only.kv_tiers.remote;
  o.kv_tiers.remote_timeout_ms = redis_only.kv_tiers.remote_timeout_ms;
  o.kv_tiers.key_file = redis_only.kv_tiers.key_file;
  auto engine = Create(o);
  const auto doc = Document(3);
  const Answer want = Reference(doc);
  const size_t chunks = kChunkedTokens / kChunk;
  redis->Stop();
  ExpectSameAnswer(Answered(*engine, Ask(doc)), want, "redis down");
  // The flush writes the disk, then retries Redis, still down: the retry asks the disk first
  // and writes nothing there again.
  Flush(*engine);
  KvTierStats stats = engine->TakeKvTierStats();
  ASSERT_EQ(stats.tiers.size(), 2u);
  EXPECT_EQ(stats.tiers[0].name, "disk");
  EXPECT_EQ(stats.tiers[0].store_seconds.size(), chunks) << "each chunk written to disk once";
  EXPECT_EQ(stats.tiers[0].store_errors, 0);
  EXPECT_GT(stats.tiers[1].load_errors, 0);
  EXPECT_GT(stats.tiers[1].store_errors, 0);
  ASSERT_TRUE(redis->Restart());
  auto other_doc = Document(4);
  ExpectSameAnswer(Answered(*engine, Ask(other_doc)), Reference(other_doc), "redis back");
  // The flush (the drain's) writes the second document, then again the first, which met Redis
  // down and which the pool still holds.
  Flush(*engine);
  EXPECT_EQ(redis->Cli({"DBSIZE"}), std::to_string(2 * chunks)) << "written again once Redis answers";
  stats = engine->TakeKvTierStats();
  EXPECT_EQ(stats.tiers[0].store_seconds.size(), chunks) << "only the second document is new on disk";
  EXPECT_EQ(stats.tiers[1].store_errors, 0);
  EXPECT_EQ(stats.tiers[1].store_seconds.size(), 2 * chunks);
  // A fresh replica sharing only Redis answers the first document from it.
  auto replica = Create(redis_only);
  const Answer from_redis = Answered(*replica, Ask(doc));
  EXPECT_EQ(from_redis.result.cached_from.remote, kChunkedTokens);
  ExpectSameAnswer(from_redis, want, "written by the retry");
}

TEST_F(KvTierEngineTest, ASlowRedisTimesOutAndTheRequestRecomputes) {
  auto redis = RedisTestServer::Start();
  if (redis == nullptr) GTEST_SKIP() << "redis-server is not installed";
  EngineOptions o = Options();
  o.kv_tiers.remote = redis->url();
  o.kv_tiers.remote_timeout_ms = 200;
  o.kv_tiers.key_file = keys_ / "key";
  const auto doc = Document(12);
  const Answer want = Reference(doc);
  {
    auto writer = Create(o);
    Answered(*writer, Ask(doc));
    Flush(*writer);
  }
  auto engine = Create(o);
  redis->Pause(30000);  // far past the timeout: the probe's first command times out
  const Answer got = Answered(*engine, Ask(doc));
  EXPECT_EQ(got.result.cached_from.remote, 0);
  ExpectSameAnswer(got, want, "recomputed while Redis does not answer");
  EXPECT_GT(engine->TakeKvTierStats().tiers[0].load_errors, 0);
}

TEST_F(KvTierEngineTest, CorruptTruncatedAndForeignChunksAreDroppedAndRecomputed) {
  const auto doc = Document(5);
  const Answer want = Reference(doc);
  {
    auto writer = Create(WithDisk());
    Answered(*writer, Ask(doc));
    Flush(*writer);
  }
  // Which file is which chunk: a restart reads chunk 0 first, so damage every file but keep count.
  auto files = ChunkFiles();
  ASSERT_EQ(files.size(), 4u);
  {  // a flipped byte in the middle of every chunk: the first load fails its checksum
    for (const auto& f : files) {
      std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
      io.seekp(static_cast<std::streamoff>(fs::file_size(f) / 2));
      char c;
      io.seekg(static_cast<std::streamoff>(fs::file_size(f) / 2));
      io.get(c);
      io.seekp(static_cast<std::streamoff>(fs::file_size(f) / 2));
      io.put(static_cast<char>(c ^ 0x10));
    }
    auto engine = Create(WithDisk());
    const Answer got = Answered(*engine, Ask(doc));
    EXPECT_EQ(got.result.cached_prompt_tokens, 0);
    ExpectSameAnswer(got, want, "corrupt chunk recomputed");
    Flush(*engine);
    const KvTierStats stats = engine->TakeKvTierStats();
    EXPECT_EQ(stats.dropped[1], 1) << "corrupt";
    // The recomputed chunk replaced the dropped one; the three others were never read.
  }
  for (const auto& f : ChunkFiles()) fs::resize_file(f, fs::file_size(f) - 7);
  {
    auto engine = Create(WithDisk());
    const Answer got = Answered(*engine, Ask(doc));
    EXPECT_EQ(got.result.cached_prompt_tokens, 0);
    ExpectSameAnswer(got, want, "truncated chunk recomputed");
    EXPECT_EQ(engine->TakeKvTierStats().dropped[0], 1) << "truncated";
  }
}

TEST_F(KvTierEngineTest, AnotherModelsChunkIsForeign) {
  // One chunk each (a 40-token prompt), so the file names say which is which.
  const auto doc = Document(6, 40);
  TempDir other_model, other_disk;
  testing::WriteModelOrDie(other_model.path(), testing::SmallConfig(), DType::kF32, 6);  // same shape, other weights
  EngineOptions theirs = WithDisk();
  theirs.model_dir = other_model.path();
  theirs.kv_tiers.disk_dir = other_disk.path();
  {
    auto a = Create(WithDisk());
    auto b = Create(theirs);
    Answered(*a, Ask(doc));
    Answered(*b, Ask(doc));
    Flush(*a);
    Flush(*b);
  }
  const auto ours = ChunkFiles();
  std::vector<fs::path> their_files;
  for (const auto& e : fs::directory_iterator(other_disk.path())) their_files.push_back(e.path());
  ASSERT_EQ(ours.size(), 1u);
  ASSERT_EQ(their_files.size(), 1u);
  EXPECT_NE(ours[0].filename(), their_files[0].filename()) << "the fingerprint separates the models' keys";
  fs::copy_file(their_files[0], ours[0], fs::copy_options::overwrite_existing);  // planted under our key
  auto engine = Create(WithDisk());
  const Answer got = Answered(*engine, Ask(doc));
  EXPECT_EQ(got.result.cached_prompt_tokens, 0);
  ExpectSameAnswer(got, Reference(doc), "foreign chunk recomputed");
  EXPECT_EQ(engine->TakeKvTierStats().dropped[2], 1) << "foreign";
}

TEST_F(KvTierEngineTest, ADiskTooSmallCountsStoreErrorsAndStillAnswers) {
  const auto doc = Document(7);
  auto engine = Create(WithDisk(1.0 / (1 << 20)));  // 1 KiB: smaller than one chunk
  ExpectSameAnswer(Answered(*engine, Ask(doc)), Reference(doc), "tiny disk");
  Flush(*engine);
  const KvTierStats stats = engine->TakeKvTierStats();
  EXPECT_EQ(stats.tiers[0].store_errors, kChunkedTokens / kChunk);
  EXPECT_TRUE(ChunkFiles().empty());
  EXPECT_EQ(engine->kv_free_tokens(), engine->kv_capacity_tokens());
}

TEST_F(KvTierEngineTest, PrefillKeepsTheDocumentAndRetainIsChecked) {
  const auto doc = Document(8);
  auto engine = Create(WithDisk());
  GenerationRequest prefill = Ask(doc);
  prefill.prefill_only = true;
  prefill.retain_s = 3600;
  Recorder recorder;
  ASSERT_TRUE(engine->Submit(prefill, &recorder).ok());
  while (recorder.finished == 0) engine->Step();
  ASSERT_FALSE(recorder.error) << recorder.error->ToString();
  EXPECT_TRUE(recorder.answer.result.token_ids.empty()) << "a prefill generates nothing";
  EXPECT_EQ(recorder.answer.result.stored_prompt_tokens, kChunkedTokens);
  EXPECT_EQ(ChunkFiles().size(), 4u) << "written through before the prefill ends";
  engine.reset();
  auto restarted = Create(WithDisk());
  const Answer warm = Answered(*restarted, Ask(doc));
  EXPECT_EQ(warm.result.cached_from.disk, kChunkedTokens);
  ExpectSameAnswer(warm, Reference(doc), "after a prefill");

  GenerationRequest bad = prefill;
  bad.retain_s = -1;
  EXPECT_EQ(restarted->Submit(bad, nullptr).code(), StatusCode::kInvalidArgument);
  bad.retain_s = 10;
  auto no_disk = Create(Options());
  const Status refused = no_disk->Submit(bad, nullptr);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("retain_s"), std::string::npos);
  // The 4 pinned chunks of the first prefill leave no room for another pinned document.
  TempDir small;
  EngineOptions tight = WithDisk();
  tight.kv_tiers.disk_dir = small.path();
  const int64_t chunk_bytes = static_cast<int64_t>(fs::file_size(ChunkFiles()[0]));
  tight.kv_tiers.disk_gib = static_cast<double>(5 * chunk_bytes) / (1LL << 30);
  auto pinned = Create(tight);
  Recorder first_pin;
  ASSERT_TRUE(pinned->Submit(prefill, &first_pin).ok());
  // Admitted together, before the first has pinned anything: its 4 chunks are counted from its
  // admission, so 2 more cannot pass the 5-chunk budget.
  GenerationRequest two_chunks = prefill;
  two_chunks.prompt = Document(11, 2 * kChunk + 5);
  const Status together = pinned->Submit(two_chunks, nullptr);
  EXPECT_EQ(together.code(), StatusCode::kResourceExhausted) << together.ToString();
  while (first_pin.finished == 0) pinned->Step();
  GenerationRequest second = prefill;
  second.prompt = Document(9);
  const Status full = pinned->Submit(second, nullptr);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("retain_s"), std::string::npos);
  // Once written, the first's chunks count as pinned once, not also as reserved: one more fits.
  GenerationRequest one_chunk = prefill;
  one_chunk.prompt = Document(13, kChunk + 5);
  Recorder last_pin;
  const Status fits = pinned->Submit(one_chunk, &last_pin);
  EXPECT_TRUE(fits.ok()) << fits.ToString();
  while (fits.ok() && last_pin.finished == 0) pinned->Step();
}

// On the CPU the pool is host memory already: --kv-host-gib opens no tier there, alone or beside
// the disk, and pins nothing (retain_s still needs the disk).
TEST_F(KvTierEngineTest, TheHostTierIsSkippedOnTheCpu) {
  EngineOptions host_only = Options();
  host_only.kv_tiers.host_gib = 1;
  auto engine = Create(host_only);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->model_info().kv_tiers, "");
  const auto doc = Document(12);
  ExpectSameAnswer(Answered(*engine, Ask(doc)), Reference(doc), "host tier skipped");
  GenerationRequest retained = Ask(doc);
  retained.retain_s = 10;
  const Status refused = engine->Submit(retained, nullptr);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find("--kv-disk-dir"), std::string::npos) << refused.ToString();

  EngineOptions with_disk = WithDisk();
  with_disk.kv_tiers.host_gib = 1;
  auto both = Create(with_disk);
  ASSERT_NE(both, nullptr);
  EXPECT_EQ(both->model_info().kv_tiers, "disk");
  EXPECT_EQ(both->TakeKvTierStats().tiers.size(), 1u);
}

TEST_F(KvTierEngineTest, SaltsKeepTenantsApart) {
  const auto doc = Document(10);
  auto engine = Create(WithDisk());
  Answered(*engine, Ask(doc, "tenant-a"));
  Flush(*engine);
  EXPECT_EQ(Answered(*engine, Ask(doc, "tenant-b")).result.cached_prompt_tokens, 0) << "neither the pool nor the disk";
  EXPECT_EQ(Answered(*engine, Ask(doc, "tenant-a")).result.cached_prompt_tokens, (kDocTokens - 1) / kBlock * kBlock);
  Flush(*engine);
  engine.reset();
  auto restarted = Create(WithDisk());
  EXPECT_EQ(Answered(*restarted, Ask(doc, "tenant-b")).result.cached_from.disk, kChunkedTokens)
      << "tenant-b's own chunks, written by its first request";
  EXPECT_EQ(Answered(*restarted, Ask(doc)).result.cached_prompt_tokens, 0) << "no salt is a salt of its own";
}

TEST_F(KvTierEngineTest, TwoRequestsForOneChunkLoadItOnce) {
  const auto doc = Document(11);
  const Answer want = Reference(doc);
  {
    auto writer = Create(WithDisk());
    Answered(*writer, Ask(doc));
    Flush(*writer);
  }
  auto engine = Create(WithDisk());
  Recorder a, b;
  ASSERT_TRUE(engine->Submit(Ask(doc), &a).ok());
  ASSERT_TRUE(engine->Submit(Ask(doc), &b).ok());
  while (a.finished == 0 || b.finished == 0) engine->Step();
  ExpectSameAnswer(a.answer, want, "first");
  ExpectSameAnswer(b.answer, want, "second");
  EXPECT_EQ(a.answer.result.cached_from.disk, kChunkedTokens);
  EXPECT_EQ(b.answer.result.cached_from.disk, 0);
  EXPECT_EQ(b.answer.result.cached_from.pool, kChunkedTokens) << "matched the blocks the first one loaded";
  EXPECT_EQ(engine->TakeKvTierStats().tiers[0].hit_tokens, kChunkedTokens) << "one load";
}

// Many clients, few documents, a pool and a disk too small for all of them: tiers fill and evict
// while requests come and go; every request ends exactly once with the recomputed answer, and at
// the end no block is held.
TEST_F(KvTierEngineTest, ConcurrentRequestsOverFewDocumentsEndOnceAndLeakNothing) {
  std::vector<std::vector<int32_t>> docs;
  std::vector<Answer> want;
  for (uint32_t d = 0; d < 3; ++d) {
    docs.push_back(Document(20 + d));
    want.push_back(Reference(docs.back()));
  }
  EngineOptions o = WithDisk();
  o.kv_cache.capacity_tokens = 512;  // three requests' worth: the pool evicts
  {
    auto probe = Create(WithDisk());
    Answered(*probe, Ask(Document(99)));
    Flush(*probe);
  }
  const int64_t chunk_bytes = static_cast<int64_t>(fs::file_size(ChunkFiles()[0]));
  o.kv_tiers.disk_gib = static_cast<double>(6 * chunk_bytes) / (1LL << 30);  // 1.5 documents
  auto engine = Create(o);
  std::mt19937 rng(3);
  std::vector<std::unique_ptr<Recorder>> recorders;
  std::vector<int> doc_of;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 8; ++i) {
      const int d = static_cast<int>(rng() % 3);
      recorders.push_back(std::make_unique<Recorder>());
      doc_of.push_back(d);
      ASSERT_TRUE(engine->Submit(Ask(docs[d]), recorders.back().get()).ok());
    }
    for (int s = 0; s < 3; ++s) engine->Step();  // the next round arrives mid-flight
  }
  while (engine->HasWork()) engine->Step();
  for (size_t i = 0; i < recorders.size(); ++i) {
    EXPECT_EQ(recorders[i]->finished, 1) << "request " << i;
    EXPECT_FALSE(recorders[i]->error) << "request " << i;
    ExpectSameAnswer(recorders[i]->answer, want[doc_of[i]], "request " + std::to_string(i));
  }
  Flush(*engine);
  EXPECT_EQ(engine->kv_free_tokens(), engine->kv_capacity_tokens()) << "no block held or leaked";
  const KvTierStats stats = engine->TakeKvTierStats();
  EXPECT_LE(stats.tiers[0].bytes_used, stats.tiers[0].budget_bytes);
}

}  // namespace
}  // namespace bpt
