// The KV tiers through the server: Prefill keeps a document on the disk tier (progress, then
// what the tiers hold), a later Generate finds it (in the pool, and after a restart on disk,
// each source counted in usage), GetModelInfo and the metrics say what the tiers did, bad
// Prefill inputs get their own status naming the field, per-key cache salts keep tenants apart
// over gRPC and HTTP, a drain flushes the tiers' queued writes, and the tier flags parse.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "server_options.h"
#include "server_test_util.h"
#include "test_models.h"

namespace bpt {
namespace {

using bptserve::v1::GenerateRequest;
using bptserve::v1::PrefillRequest;
using testing::Generate;
using testing::LoopbackOptions;
using testing::MetricReaches;
using testing::MetricValue;
using testing::Prefill;
using testing::TempDir;
using testing::TestServer;

constexpr int64_t kChunk = 256;  // KvTierOptions::chunk_tokens' default
constexpr int64_t kBlock = 64;   // KvCacheOptions::block_size's

// A document of a few chunks of the demo model's tokens.
std::string Document(int sentences = 90) {
  std::string doc;
  for (int i = 0; i < sentences; ++i)
    doc += "Clause " + std::to_string(i) + ": the parties keep every long document in the tiers. ";
  return doc;
}

server::ServerOptions WithDisk(const TempDir& dir, double gib = 1.0) {
  server::ServerOptions o = LoopbackOptions(testing::DemoModelDir());
  o.engine.kv_tiers.disk_dir = dir / "tier";
  o.engine.kv_tiers.disk_gib = gib;
  return o;
}

PrefillRequest TextPrefill(const std::string& text, int64_t retain_s = 0) {
  PrefillRequest r;
  r.set_text(text);
  r.set_retain_s(retain_s);
  return r;
}

std::vector<int32_t> Tokenize(TestServer& t, const std::string& text) {
  grpc::ClientContext context;
  bptserve::v1::TokenizeRequest request;
  request.set_text(text);
  request.set_add_bos(true);  // as a text prompt is tokenized
  bptserve::v1::TokenizeResponse response;
  EXPECT_TRUE(t.stub->Tokenize(&context, request, &response).ok());
  return {response.token_ids().begin(), response.token_ids().end()};
}

// The document's ids and then a question: a prompt that starts with the document exactly.
GenerateRequest Question(const std::vector<int32_t>& document, int max_new_tokens = 6) {
  GenerateRequest r;
  r.mutable_token_ids()->mutable_ids()->Assign(document.begin(), document.end());
  for (int32_t id : {17, 42, 99, 7}) r.mutable_token_ids()->add_ids(id);
  r.mutable_sampling()->set_temperature(0);
  r.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  r.mutable_stopping()->set_ignore_eos(true);
  return r;
}

bptserve::v1::ModelInfo Info(TestServer& t) {
  grpc::ClientContext context;
  bptserve::v1::ModelInfo info;
  EXPECT_TRUE(t.stub->GetModelInfo(&context, {}, &info).ok());
  return info;
}

int64_t Sum(const bptserve::v1::CachedTokenSources& c) { return c.pool() + c.host() + c.disk() + c.remote(); }

size_t ChunkFiles(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".kv") ++n;
  return n;
}

std::string DiskSeries(const std::string& family) { return family + "{tier=\"disk\"}"; }

TEST(ServerKvTier, PrefillKeepsADocumentThatGenerateFindsInThePoolAndAfterARestartOnDisk) {
  TempDir disk;
  const std::string document = Document();
  std::vector<int32_t> ids;
  int64_t stored = 0;
  std::vector<int32_t> answer_from_pool;
  {
    TestServer t(WithDisk(disk));
    const bptserve::v1::ModelInfo info = Info(t);
    EXPECT_EQ(info.kv_tiers(), "disk");
    EXPECT_EQ(info.kv_tier_chunk_tokens(), kChunk);
    ids = Tokenize(t, document);
    const int64_t n = static_cast<int64_t>(ids.size());
    ASSERT_GT(n, 2 * kChunk) << "the document should span chunks";

    const auto p = Prefill(*t.stub, TextPrefill(document));
    ASSERT_TRUE(p.status.ok()) << p.status.error_message();
    ASSERT_FALSE(p.progress.empty());
    for (size_t i = 1; i < p.progress.size(); ++i)
      EXPECT_GT(p.progress[i].processed_tokens(), p.progress[i - 1].processed_tokens());
    EXPECT_EQ(p.progress.back().processed_tokens(), n);
    EXPECT_EQ(p.progress.back().total_tokens(), n);
    EXPECT_EQ(p.finished_messages, 1);
    EXPECT_EQ(p.finished.prompt_tokens(), n);
    stored = p.finished.cached_tokens();
    EXPECT_EQ(stored, (n - 1) / kChunk * kChunk) << "every whole chunk before the last token";
    EXPECT_EQ(p.finished.cached_prompt_tokens(), 0) << "nothing was cached before";
    EXPECT_EQ(Sum(p.finished.cached_from()), 0);
    EXPECT_GT(p.finished.timings().prefill_s(), 0);
    EXPECT_EQ(p.finished.timings().time_to_first_token_s(), 0) << "no token";
    EXPECT_EQ(ChunkFiles(disk / "tier"), static_cast<size_t>(stored / kChunk)) << "written through before it ended";
    // What the disk tier did, once the worker has published it.
    EXPECT_TRUE(MetricReaches(t, DiskSeries("bptserve_kv_tier_store_seconds_count"), static_cast<double>(stored / kChunk)));
    const std::string m = testing::ScrapeMetrics(t);
    EXPECT_GT(MetricValue(m, DiskSeries("bptserve_kv_tier_bytes_used")), 0);
    EXPECT_EQ(MetricValue(m, DiskSeries("bptserve_kv_tier_budget_bytes")), static_cast<double>(1LL << 30));
    EXPECT_EQ(MetricValue(m, DiskSeries("bptserve_kv_tier_store_errors_total")), 0);
    EXPECT_TRUE(std::isnan(MetricValue(m, "bptserve_kv_tier_store_errors_total{tier=\"remote\"}")))
        << "only the configured tiers have series";

    // A question about it: the pool still holds the document.
    const auto warm = Generate(*t.stub, Question(ids));
    ASSERT_TRUE(warm.status.ok()) << warm.status.error_message();
    const auto& usage = warm.finished.usage();
    EXPECT_GE(usage.cached_prompt_tokens(), stored);
    EXPECT_EQ(usage.cached_from().pool(), usage.cached_prompt_tokens());
    EXPECT_EQ(Sum(usage.cached_from()), usage.cached_prompt_tokens());
    answer_from_pool = warm.token_ids;
  }

  // A new server on the same directory: the pool is empty, the disk has the document.
  TestServer t(WithDisk(disk));
  EXPECT_GT(MetricValue(testing::ScrapeMetrics(t), DiskSeries("bptserve_kv_tier_bytes_used")), 0)
      << "what the disk holds from the last run, before any request";
  const auto from_disk = Generate(*t.stub, Question(ids));
  ASSERT_TRUE(from_disk.status.ok()) << from_disk.status.error_message();
  const auto& usage = from_disk.finished.usage();
  EXPECT_EQ(usage.cached_from().disk(), stored);
  EXPECT_EQ(usage.cached_from().pool(), 0);
  EXPECT_EQ(usage.cached_from().remote(), 0);
  EXPECT_EQ(usage.cached_prompt_tokens(), stored);
  EXPECT_GT(from_disk.finished.timings().kv_load_s(), 0);
  GenerateRequest recompute = Question(ids);
  recompute.mutable_options()->set_bypass_prefix_cache(true);
  const auto recomputed = Generate(*t.stub, recompute);
  ASSERT_TRUE(recomputed.status.ok());
  EXPECT_EQ(from_disk.token_ids, recomputed.token_ids) << "the chunks are a copy of the recomputed KV";
  EXPECT_EQ(from_disk.token_ids, answer_from_pool);

  EXPECT_TRUE(MetricReaches(t, DiskSeries("bptserve_kv_tier_hit_tokens_total"), static_cast<double>(stored)));
  EXPECT_TRUE(MetricReaches(t, DiskSeries("bptserve_kv_tier_load_seconds_count"), static_cast<double>(stored / kChunk)));
  const std::string m = testing::ScrapeMetrics(t);
  for (const char* family :
       {"bptserve_kv_tier_hit_tokens_total", "bptserve_kv_tier_miss_tokens_total", "bptserve_kv_tier_load_errors_total",
        "bptserve_kv_tier_store_errors_total", "bptserve_kv_tier_bytes_used", "bptserve_kv_tier_budget_bytes",
        "bptserve_kv_tier_load_seconds", "bptserve_kv_tier_store_seconds", "bptserve_kv_tier_dropped_chunks_total",
        "bptserve_kv_tier_store_skipped_total"})
    EXPECT_NE(m.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  EXPECT_EQ(MetricValue(m, "bptserve_kv_tier_load_seconds_bucket{tier=\"disk\",le=\"10\"}"),
            MetricValue(m, DiskSeries("bptserve_kv_tier_load_seconds_count")))
      << "buckets reach 10 s";
  for (const char* reason : {"truncated", "corrupt", "foreign", "hmac"})
    EXPECT_EQ(MetricValue(m, std::string("bptserve_kv_tier_dropped_chunks_total{reason=\"") + reason + "\"}"), 0)
        << reason;
  EXPECT_EQ(MetricValue(m, "bptserve_kv_tier_store_skipped_total"), 0);
}

struct BadPrefill {
  const char* name;
  std::function<void(PrefillRequest&)> change;
  grpc::StatusCode code;
  const char* fragment;
};

// --kv-host-gib on the CPU device: the engine skips the tier (the pool is host memory already),
// so neither GetModelInfo nor the metrics show one.
TEST(ServerKvTier, TheHostTierIsSkippedOnTheCpuDevice) {
  TempDir disk;
  server::ServerOptions o = WithDisk(disk);
  o.engine.device = "cpu";
  o.engine.kv_tiers.host_gib = 1;
  TestServer t(o);
  EXPECT_EQ(Info(t).kv_tiers(), "disk");
  EXPECT_TRUE(MetricReaches(t, DiskSeries("bptserve_kv_tier_budget_bytes"), static_cast<double>(1LL << 30)));
  EXPECT_TRUE(std::isnan(MetricValue(testing::ScrapeMetrics(t), "bptserve_kv_tier_budget_bytes{tier=\"host\"}")));
}

TEST(ServerKvTier, BadPrefillInputsNameTheFieldAndTheServerKeepsServing) {
  TempDir disk;
  // 1 MiB of disk: a document of two chunks or more (513 KiB each) cannot be pinned there.
  TestServer t(WithDisk(disk, 1.0 / 1024));
  const std::vector<BadPrefill> cases = {
      {"no prompt", [](PrefillRequest& r) { r.clear_prompt(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "set 'text', 'token_ids' or 'chat'"},
      {"empty text", [](PrefillRequest& r) { r.set_text(""); }, grpc::StatusCode::INVALID_ARGUMENT, "'text' is empty"},
      {"empty ids", [](PrefillRequest& r) { r.mutable_token_ids(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "'token_ids' is empty"},
      {"id past vocab", [](PrefillRequest& r) { r.mutable_token_ids()->add_ids(1000); },
       grpc::StatusCode::INVALID_ARGUMENT, "token_ids[0] = 1000 is outside the vocabulary"},
      {"empty chat", [](PrefillRequest& r) { r.mutable_chat(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "chat.messages: empty"},
      {"negative retain_s", [](PrefillRequest& r) { r.set_retain_s(-1); }, grpc::StatusCode::INVALID_ARGUMENT,
       "retain_s must be in [0, 31536000]"},
      {"retain_s over the disk budget", [](PrefillRequest& r) { r.set_retain_s(3600); },
       grpc::StatusCode::RESOURCE_EXHAUSTED, "retain_s"},
      {"prompt over the model's context", [](PrefillRequest& r) { r.mutable_token_ids()->mutable_ids()->Resize(1048576, 7); },
       grpc::StatusCode::INVALID_ARGUMENT, "the model's context limit is 1048576 tokens"},
  };
  const std::string series = "bptserve_request_errors_total{code=\"INVALID_ARGUMENT\"}";
  const double invalid_before = MetricValue(testing::ScrapeMetrics(t), series);
  int invalid = 0;
  for (const auto& c : cases) {
    PrefillRequest r = TextPrefill(Document(100));
    c.change(r);
    const auto p = Prefill(*t.stub, r);
    EXPECT_EQ(p.status.error_code(), c.code) << c.name << ": " << p.status.error_message();
    EXPECT_NE(p.status.error_message().find(c.fragment), std::string::npos) << c.name << ": " << p.status.error_message();
    EXPECT_EQ(p.finished_messages, 0) << c.name;
    invalid += c.code == grpc::StatusCode::INVALID_ARGUMENT;
  }
  grpc::Slice garbage(std::string("\xff\xff\xff"));
  const grpc::Status raw = testing::RawCall(t.channel, "/bptserve.v1.Inference/Prefill", grpc::ByteBuffer(&garbage, 1));
  EXPECT_EQ(raw.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(raw.error_message().find("not a valid bptserve.v1.PrefillRequest message"), std::string::npos)
      << raw.error_message();
  EXPECT_EQ(MetricValue(testing::ScrapeMetrics(t), series), invalid_before + invalid + 1);

  // A client that cancels a long prefill ends it, with one status.
  {
    grpc::ClientContext context;
    PrefillRequest long_one;
    long_one.mutable_token_ids()->mutable_ids()->Resize(20000, 9);
    auto reader = t.stub->Prefill(&context, long_one);
    bptserve::v1::PrefillResponse r;
    ASSERT_TRUE(reader->Read(&r));
    EXPECT_TRUE(r.has_prefill_progress());
    context.TryCancel();
    while (reader->Read(&r)) EXPECT_FALSE(r.has_finished());
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // Still serving, pinned documents that fit included (one chunk, 513 KiB).
  PrefillRequest one_chunk;
  one_chunk.mutable_token_ids()->mutable_ids()->Resize(300, 11);
  one_chunk.set_retain_s(60);
  const auto ok = Prefill(*t.stub, one_chunk);
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.finished.cached_tokens(), kChunk);

  // Without a disk tier: nothing to pin on, and a prefill keeps the pool's whole blocks.
  TestServer plain(LoopbackOptions(testing::DemoModelDir()));
  EXPECT_EQ(Info(plain).kv_tiers(), "");
  EXPECT_EQ(Info(plain).kv_tier_chunk_tokens(), 0);
  const auto no_disk = Prefill(*plain.stub, TextPrefill(Document(30), 10));
  EXPECT_EQ(no_disk.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << no_disk.status.error_message();
  EXPECT_NE(no_disk.status.error_message().find("retain_s"), std::string::npos) << no_disk.status.error_message();
  const auto pool_only = Prefill(*plain.stub, TextPrefill(Document(30)));
  ASSERT_TRUE(pool_only.status.ok()) << pool_only.status.error_message();
  EXPECT_EQ(pool_only.finished.cached_tokens(), pool_only.finished.prompt_tokens() / kBlock * kBlock);
  EXPECT_TRUE(std::isnan(MetricValue(testing::ScrapeMetrics(plain), DiskSeries("bptserve_kv_tier_hit_tokens_total"))))
      << "no tier, no tier series";
}

// POST /v1/completions with a key; the response's JSON.
nlohmann::json Complete(TestServer& t, const std::string& key, const std::vector<int32_t>& prompt) {
  const std::string body = nlohmann::json{{"prompt", prompt}, {"max_tokens", 2}, {"temperature", 0}}.dump();
  const std::string response = testing::HttpExchange(
      t.server->http_port(), "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                             "Authorization: Bearer " + key + "\r\nContent-Type: application/json\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body);
  const size_t start = response.find("\r\n\r\n");
  EXPECT_NE(start, std::string::npos) << response;
  return start == std::string::npos ? nlohmann::json() : nlohmann::json::parse(response.substr(start + 4), nullptr, false);
}

int64_t HttpCachedTokens(const nlohmann::json& completion) {
  return completion.value("/usage/prompt_tokens_details/cached_tokens"_json_pointer, int64_t{-1});
}

TEST(ServerKvTier, CacheSaltPerApiKeyKeepsTenantsApartOverGrpcAndHttp) {
  TempDir dir;
  std::ofstream(dir / "keys") << "tenant-one\ntenant-two\ntenant-three\n";
  server::ServerOptions options = WithDisk(dir);
  options.api_key_file = dir / "keys";
  options.kv_cache_salt_per_api_key = true;
  TestServer t(options);
  auto call = [&](const std::string& key) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata("authorization", "Bearer " + key);
    return context;
  };
  std::vector<int32_t> ids;
  for (int i = 0; i < 600; ++i) ids.push_back(3 + (i * 13) % 900);
  PrefillRequest prefill;
  prefill.mutable_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
  const auto kept = Prefill(*t.stub, prefill, call("tenant-one").get());
  ASSERT_TRUE(kept.status.ok()) << kept.status.error_message();
  ASSERT_GT(kept.finished.cached_tokens(), 0);

  const auto other = Generate(*t.stub, Question(ids), call("tenant-two").get());
  ASSERT_TRUE(other.status.ok()) << other.status.error_message();
  EXPECT_EQ(other.finished.usage().cached_prompt_tokens(), 0) << "neither the pool nor the disk, under another key";
  EXPECT_EQ(Sum(other.finished.usage().cached_from()), 0);
  const auto same = Generate(*t.stub, Question(ids), call("tenant-one").get());
  ASSERT_TRUE(same.status.ok()) << same.status.error_message();
  EXPECT_GE(same.finished.usage().cached_prompt_tokens(), kept.finished.cached_tokens());
  EXPECT_EQ(same.token_ids, other.token_ids) << "the same answer, cached or not";

  // HTTP salts by the same key: tenant-one's document is found, tenant-three's request recomputes.
  auto with_question = ids;
  with_question.push_back(5);
  EXPECT_GE(HttpCachedTokens(Complete(t, "tenant-one", with_question)), kept.finished.cached_tokens());
  EXPECT_EQ(HttpCachedTokens(Complete(t, "tenant-three", with_question)), 0);

  // Without the flag the keys share one cache.
  server::ServerOptions shared = LoopbackOptions(testing::DemoModelDir());
  shared.api_key_file = dir / "keys";
  TestServer s(shared);
  ASSERT_TRUE(Prefill(*s.stub, prefill, call("tenant-one").get()).status.ok());
  EXPECT_GT(Generate(*s.stub, Question(ids), call("tenant-two").get()).finished.usage().cached_prompt_tokens(), 0);
}

TEST(ServerKvTier, DrainWritesTheQueuedChunksBeforeTheServerStops) {
  TempDir disk;
  TestServer t(WithDisk(disk));
  std::vector<int32_t> ids;
  for (int i = 0; i < 1100; ++i) ids.push_back(3 + (i * 11) % 900);
  const auto g = Generate(*t.stub, Question(ids, 2));
  ASSERT_TRUE(g.status.ok()) << g.status.error_message();
  const int64_t prompt = g.finished.usage().prompt_tokens();
  t.server->Drain();  // the request's blocks were released at its end: their chunks are queued or written
  EXPECT_EQ(ChunkFiles(disk / "tier"), static_cast<size_t>((prompt - 1) / kChunk));
}

// The tier flags into EngineOptions::kv_tiers, the summary printed at start (a Redis password in
// the URL left out), and the combinations that cannot work refused before anything starts.
TEST(ServerKvTier, TierFlagsParseAndImpossibleCombinationsAreRefused) {
  auto parse = [](std::vector<std::string> args, int* exit_code) {
    args.insert(args.begin(), "bptserve");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    *exit_code = 0;
    return server::ParseServerOptions(static_cast<int>(argv.size()), argv.data(), exit_code);
  };
  int code = 0;
  auto o = parse({"--kv-host-gib", "4", "--kv-disk-dir", "/var/kv", "--kv-disk-gib", "100", "--kv-remote",
                  "redis://:hunter2@kv-redis:6379/1", "--kv-remote-password-file", "/secrets/redis",
                  "--kv-remote-timeout-ms", "500", "--kv-tier-key-file", "/secrets/hmac", "--kv-tier-chunk-tokens",
                  "512", "--api-key-file", "/keys", "--kv-cache-salt-per-api-key"},
                 &code);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  const KvTierOptions& k = o->engine.kv_tiers;
  EXPECT_EQ(k.host_gib, 4);
  EXPECT_EQ(k.disk_dir, "/var/kv");
  EXPECT_EQ(k.disk_gib, 100);
  EXPECT_EQ(k.remote, "redis://:hunter2@kv-redis:6379/1");
  EXPECT_EQ(k.remote_password_file, "/secrets/redis");
  EXPECT_EQ(k.remote_timeout_ms, 500);
  EXPECT_EQ(k.key_file, "/secrets/hmac");
  EXPECT_EQ(k.chunk_tokens, 512);
  EXPECT_TRUE(o->kv_cache_salt_per_api_key);
  const std::string summary = o->Describe();
  EXPECT_NE(summary.find("disk /var/kv (100 GiB)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("redis://:***@kv-redis:6379/1"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("hunter2"), std::string::npos) << summary;
  // A password alone before the @ (no user, no colon) is hidden too.
  auto bare = parse({"--kv-remote", "redis://hunter3@kv-redis:6379", "--kv-tier-key-file", "/secrets/hmac"}, &code);
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_NE(bare->Describe().find("redis://***@kv-redis:6379"), std::string::npos) << bare->Describe();
  EXPECT_EQ(bare->Describe().find("hunter3"), std::string::npos) << bare->Describe();
  EXPECT_NE(summary.find("KV cache salt:     per API key"), std::string::npos) << summary;

  // TLS to Redis: rediss:// and its files, in the summary by path.
  auto tls = parse({"--kv-remote", "rediss://kv-redis:6380", "--kv-tier-key-file", "/secrets/hmac",
                    "--kv-remote-tls-ca-file", "/secrets/ca.crt", "--kv-remote-tls-cert-file", "/secrets/tls.crt",
                    "--kv-remote-tls-key-file", "/secrets/tls.key", "--kv-remote-tls-server-name", "redis.internal"},
                   &code);
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  EXPECT_EQ(tls->engine.kv_tiers.remote_tls_ca_file, "/secrets/ca.crt");
  EXPECT_EQ(tls->engine.kv_tiers.remote_tls_cert_file, "/secrets/tls.crt");
  EXPECT_EQ(tls->engine.kv_tiers.remote_tls_key_file, "/secrets/tls.key");
  EXPECT_EQ(tls->engine.kv_tiers.remote_tls_server_name, "redis.internal");
  const std::string tls_summary = tls->Describe();
  EXPECT_NE(tls_summary.find("TLS: CA /secrets/ca.crt, client certificate /secrets/tls.crt, server name redis.internal"),
            std::string::npos)
      << tls_summary;
  tls = parse({"--kv-remote", "rediss://kv-redis:6380", "--kv-tier-key-file", "/secrets/hmac"}, &code);
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  EXPECT_NE(tls->Describe().find("TLS: CA the system's)"), std::string::npos) << tls->Describe();

  auto defaults = parse({}, &code);
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->engine.kv_tiers.enabled());
  EXPECT_NE(defaults->Describe().find("KV tiers:          off"), std::string::npos);

  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"--kv-disk-dir", "/var/kv"},
           {"--kv-disk-gib", "5"},
           {"--kv-remote", "redis://kv:6379"},
           {"--kv-remote-password-file", "/secrets/redis"},
           {"--kv-remote-tls-ca-file", "/secrets/ca.crt"},
           {"--kv-remote-tls-server-name", "redis.internal", "--kv-remote", "redis://kv:6379", "--kv-tier-key-file", "/k"},
           {"--kv-remote-tls-cert-file", "/c", "--kv-remote-tls-key-file", "/k", "--kv-remote", "redis://kv:6379",
            "--kv-tier-key-file", "/k"},
           {"--kv-remote-tls-cert-file", "/c", "--kv-remote", "rediss://kv:6379", "--kv-tier-key-file", "/k"},
           {"--kv-remote-tls-key-file", "/k", "--kv-remote", "rediss://kv:6379", "--kv-tier-key-file", "/k"},
           {"--kv-cache-salt-per-api-key"},
           {"--kv-disk-gib", "-1", "--kv-disk-dir", "/var/kv"},
       }) {
    EXPECT_FALSE(parse(bad, &code).ok()) << bad[0];
    EXPECT_NE(code, 0) << bad[0];
  }
}

}  // namespace
}  // namespace bpt
