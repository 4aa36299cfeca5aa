// The gRPC server on loopback: streaming equals the engine, cancellation, deadlines, every bad
// input with its code and field, API keys, queue limits, health and drain. After each case
// the server keeps serving.
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "engine.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "server_test_util.h"
#include "test_models.h"

namespace bpt {
namespace {

using bptserve::v1::GenerateRequest;
using testing::Generate;
using testing::LoopbackOptions;
using testing::MetricReaches;
using testing::MetricValue;
using testing::TestServer;


GenerateRequest TextRequest(const std::string& text, int max_new_tokens = 16) {
  GenerateRequest r;
  r.set_text(text);
  r.mutable_sampling()->set_temperature(0.7f);
  r.mutable_sampling()->set_seed(11);
  r.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  r.mutable_stopping()->set_ignore_eos(true);
  return r;
}

GenerateRequest LongRequest(int tokens, int max_new_tokens) {
  GenerateRequest r;
  for (int i = 0; i < tokens; ++i) r.mutable_token_ids()->add_ids(3 + (i * 7) % 900);
  r.mutable_stopping()->set_max_new_tokens(max_new_tokens);
  r.mutable_stopping()->set_ignore_eos(true);
  return r;
}

// The server is alive and answers a small request correctly.
void ExpectServing(TestServer& t) {
  const auto s = Generate(*t.stub, TextRequest("still there?", 2));
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(s.token_ids.size(), 2u);
}

std::string Metrics(TestServer& t) { return testing::ScrapeMetrics(t); }

// Waits for the health service to report `want` for `service`, through its Watch stream (each
// change is sent as it happens); false if the stream ends first, or after a minute, which only
// bounds a failure.
bool HealthReaches(TestServer& t, const std::string& service,
                   grpc::health::v1::HealthCheckResponse::ServingStatus want) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(1));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  auto watch = grpc::health::v1::Health::NewStub(t.channel)->Watch(&context, request);
  grpc::health::v1::HealthCheckResponse response;
  while (watch->Read(&response))
    if (response.status() == want) {
      context.TryCancel();
      return true;
    }
  return false;
}

// Steps that ran more than one request, from the batch-size histogram.
double MultiRequestSteps(const std::string& metrics) {
  return MetricValue(metrics, "bptserve_iteration_sequences_count") -
         MetricValue(metrics, "bptserve_iteration_sequences_bucket{le=\"1\"}");
}

// A stream with 30000 tokens to decode (minutes here), against at most a few hundred steps of what
// a test runs beside it, so it is still running when the test cancels it: meanwhile every engine
// step runs it, and a max_running 1 server queues every other request. Read on a thread of its
// own, so its tokens never back up into the connection that the test's other calls share.
class Occupier {
 public:
  // True once its first token arrived: it is running.
  bool Start(TestServer& t) {
    reader_ = t.stub->Generate(&context_, TextRequest("occupy the engine", 30000));
    bptserve::v1::GenerateResponse r;
    if (!reader_->Read(&r)) return false;
    thread_ = std::thread([this] {
      bptserve::v1::GenerateResponse m;
      while (reader_->Read(&m)) {
        std::lock_guard<std::mutex> lock(mu_);
        tokens_ += m.has_tokens() ? m.tokens().token_ids_size() : 0;
        cv_.notify_all();
      }
    });
    return true;
  }
  // Until `more` tokens beyond those read so far arrive, each one more engine step; false only
  // after a minute, which only a stalled engine explains.
  bool WaitForMoreTokens(int more) {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t target = tokens_ + more;
    return cv_.wait_for(lock, std::chrono::minutes(1), [&] { return tokens_ >= target; });
  }
  grpc::Status Cancel() {
    context_.TryCancel();
    if (thread_.joinable()) thread_.join();
    finished_ = true;
    return reader_->Finish();
  }
  ~Occupier() {
    if (reader_ && !finished_) Cancel();
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<bptserve::v1::GenerateResponse>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t tokens_ = 0;
  bool finished_ = false;
};

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new TestServer(LoopbackOptions(testing::DemoModelDir())); }
  static void TearDownTestSuite() { delete server_; }
  std::string Metrics() { return testing::HttpGet(server_->server->metrics_port(), "/metrics"); }
  static TestServer* server_;
};
TestServer* ServerTest::server_ = nullptr;

TEST_F(ServerTest, StreamEqualsTheEngineWithProgressUsageAndTimings) {
  GenerateRequest request = TextRequest("Long documents are the reason bptserve exists. ", 24);
  request.mutable_options()->set_prefill_progress(true);
  request.mutable_options()->set_top_logprobs(3);
  const auto s = Generate(*server_->stub, request);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();

  EngineOptions options;
  options.model_dir = testing::DemoModelDir();
  options.scheduler.prefill_block = 64;
  options.kv_cache.capacity_tokens = 32768;
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok());
  GenerationRequest direct;
  direct.prompt = *(*engine)->EncodePrompt(request.text());
  direct.sampling.temperature = 0.7f;
  direct.sampling.seed = 11;
  direct.stopping.max_new_tokens = 24;
  direct.stopping.ignore_eos = true;
  auto expected = (*engine)->Generate(direct, nullptr);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(s.token_ids, expected->token_ids);
  EXPECT_EQ(s.text, expected->text);
  auto all = direct.prompt;
  all.insert(all.end(), s.token_ids.begin(), s.token_ids.end());
  EXPECT_EQ(*(*engine)->Decode(all), *(*engine)->Decode(direct.prompt) + s.text);

  const int64_t n = static_cast<int64_t>(direct.prompt.size());
  ASSERT_FALSE(s.progress.empty());
  for (size_t i = 1; i < s.progress.size(); ++i)
    EXPECT_GT(s.progress[i].processed_tokens(), s.progress[i - 1].processed_tokens());
  EXPECT_EQ(s.progress.back().processed_tokens(), n);
  EXPECT_EQ(s.progress.back().total_tokens(), n);
  EXPECT_EQ(s.finished_messages, 1);
  EXPECT_EQ(s.finished.reason(), bptserve::v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(s.finished.usage().prompt_tokens(), n);
  EXPECT_EQ(s.finished.usage().completion_tokens(), 24);
  // Admitted at once, so how long it queued is the machine's business; that it queued (in the
  // worker's inbox, then until the step that took it), then prefilled, then produced its first
  // token, in that order, is not. ServerQueue.QueueTimeCoversTheWaitBehindARunningRequest pins
  // queue_s down where the wait is long.
  const auto& timings = s.finished.timings();
  EXPECT_GT(timings.queue_s(), 0);
  EXPECT_GT(timings.prefill_s(), 0);
  EXPECT_LE(timings.queue_s() + timings.prefill_s(), timings.time_to_first_token_s());
  EXPECT_GT(timings.decode_s(), 0);
}

TEST_F(ServerTest, LogprobsFollowEachToken) {
  GenerateRequest request = TextRequest("logprobs", 6);
  request.mutable_options()->set_top_logprobs(4);
  grpc::ClientContext context;
  auto reader = server_->stub->Generate(&context, request);
  bptserve::v1::GenerateResponse r;
  size_t tokens = 0, logprobs = 0;
  while (reader->Read(&r)) {
    if (!r.has_tokens()) continue;
    tokens += r.tokens().token_ids_size();
    logprobs += r.tokens().logprobs_size();
    for (const auto& lp : r.tokens().logprobs()) {
      EXPECT_EQ(lp.top_size(), 4);
      EXPECT_LE(lp.logprob(), 0);
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(tokens, 6u);
  EXPECT_EQ(logprobs, tokens);
}

// Where the first cancel lands (still in the prefill, or already decoding) is the machine's business:
// the engine keeps stepping while the cancel travels. EngineWorker.CancelOnTheFirstProgressEvent-
// EndsThePrefillThere pins that down, raising the cancel on the engine's thread. Here: each cancel,
// wherever it lands, ends its stream CANCELLED, is counted once and frees its blocks. Neither request
// can finish first: each has 20000 tokens to generate.
TEST_F(ServerTest, CancelMidPrefillAndMidDecodeFreesTheCache) {
  const std::string series = "bptserve_request_errors_total{code=\"CANCELLED\"}";
  const double cancelled_before = MetricValue(Metrics(), series);
  {  // on the first progress event of a 6K-token prompt
    GenerateRequest request = LongRequest(6000, 20000);
    request.mutable_options()->set_prefill_progress(true);
    grpc::ClientContext context;
    auto reader = server_->stub->Generate(&context, request);
    bptserve::v1::GenerateResponse r;
    ASSERT_TRUE(reader->Read(&r));
    ASSERT_TRUE(r.has_prefill_progress());
    EXPECT_LT(r.prefill_progress().processed_tokens(), 6000);  // the first event is written at once
    context.TryCancel();
    while (reader->Read(&r)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  {  // after the first tokens
    GenerateRequest request = TextRequest("decode for a while", 20000);
    grpc::ClientContext context;
    auto reader = server_->stub->Generate(&context, request);
    bptserve::v1::GenerateResponse r;
    while (reader->Read(&r) && !r.has_tokens()) {
    }
    context.TryCancel();
    while (reader->Read(&r)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // Counted as each job ends, after its blocks went back.
  ASSERT_TRUE(MetricReaches(*server_, series, cancelled_before + 2)) << MetricValue(Metrics(), series);
  ExpectServing(*server_);
  const std::string m = Metrics();
  EXPECT_EQ(MetricValue(m, "bptserve_kv_cache_usage_perc"), 0.0);
  EXPECT_EQ(MetricValue(m, series), cancelled_before + 2);
}

// The deadline passes while the request waits (max_running 1, behind an occupier that cannot finish
// first), so it cannot complete before it however fast the machine. Its length only has to cover
// sending the request (a deadline already past would end the call in the client, unsent), so it
// is generous: 5 s for a message that takes milliseconds.
TEST(ServerQueue, DeadlineExceededIsReportedAndCounted) {
  auto options = LoopbackOptions(testing::DemoModelDir());
  options.engine.scheduler.max_running = 1;
  TestServer t(options);
  Occupier occupier;
  ASSERT_TRUE(occupier.Start(t));
  const std::string series = "bptserve_request_errors_total{code=\"DEADLINE_EXCEEDED\"}";
  const double before = MetricValue(Metrics(t), series);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  const auto s = Generate(*t.stub, LongRequest(10, 4), &context);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(s.token_ids.empty());
  // The client's own timer may end the call before the server's worker sees the deadline passed.
  ASSERT_TRUE(MetricReaches(t, series, before + 1)) << MetricValue(Metrics(t), series);
  EXPECT_EQ(MetricValue(Metrics(t), "bptserve_num_requests_waiting"), 0);
  EXPECT_EQ(occupier.Cancel().error_code(), grpc::StatusCode::CANCELLED);
  ExpectServing(t);
  EXPECT_EQ(MetricValue(Metrics(t), series), before + 1);
}

// A request queued behind a running one reports the whole wait as queue time: it was in the server
// before the client saw it counted waiting, and could not start before the client cancelled the
// request ahead of it, twenty of whose decode steps lie between the two.
TEST(ServerQueue, QueueTimeCoversTheWaitBehindARunningRequest) {
  auto options = LoopbackOptions(testing::DemoModelDir());
  options.engine.scheduler.max_running = 1;
  TestServer t(options);
  Occupier occupier;
  ASSERT_TRUE(occupier.Start(t));
  testing::Stream waiting;
  // Token ids, not text: counted waiting only from the worker's inbox, whose clock starts on entry.
  std::thread client([&] { waiting = Generate(*t.stub, LongRequest(10, 4)); });
  ASSERT_TRUE(MetricReaches(t, "bptserve_num_requests_waiting", 1));
  const auto seen_waiting = std::chrono::steady_clock::now();
  ASSERT_TRUE(occupier.WaitForMoreTokens(20));
  const auto released = std::chrono::steady_clock::now();
  EXPECT_EQ(occupier.Cancel().error_code(), grpc::StatusCode::CANCELLED);
  client.join();
  ASSERT_TRUE(waiting.status.ok()) << waiting.status.error_message();
  const auto& timings = waiting.finished.timings();
  EXPECT_GE(timings.queue_s(), std::chrono::duration<double>(released - seen_waiting).count());
  EXPECT_GT(timings.prefill_s(), 0);
  EXPECT_LE(timings.queue_s() + timings.prefill_s(), timings.time_to_first_token_s());
}

struct BadInput {
  const char* name;
  std::function<void(GenerateRequest&)> change;
  grpc::StatusCode code;
  const char* fragment;
};

TEST_F(ServerTest, BadInputsNameTheFieldAndTheServerKeepsServing) {
  const std::vector<BadInput> cases = {
      {"no prompt", [](GenerateRequest& r) { r.clear_prompt(); }, grpc::StatusCode::INVALID_ARGUMENT, "set 'text', 'token_ids' or 'chat'"},
      {"empty text", [](GenerateRequest& r) { r.set_text(""); }, grpc::StatusCode::INVALID_ARGUMENT, "'text' is empty"},
      {"empty ids", [](GenerateRequest& r) { r.mutable_token_ids(); }, grpc::StatusCode::INVALID_ARGUMENT, "'token_ids' is empty"},
      {"negative id", [](GenerateRequest& r) { r.mutable_token_ids()->add_ids(5); r.mutable_token_ids()->add_ids(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "token_ids[1] = -1"},
      {"id past vocab", [](GenerateRequest& r) { r.mutable_token_ids()->add_ids(1000); },
       grpc::StatusCode::INVALID_ARGUMENT, "token_ids[0] = 1000 is outside the vocabulary [0, 1000)"},
      {"max_new_tokens 0", [](GenerateRequest& r) { r.mutable_stopping()->set_max_new_tokens(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "max_new_tokens must be in [1, "},
      {"max_new_tokens over the limit", [](GenerateRequest& r) { r.mutable_stopping()->set_max_new_tokens(2000000); },
       grpc::StatusCode::INVALID_ARGUMENT, "max_new_tokens must be in [1, 1048576]"},
      {"max_new_tokens over the KV cache", [](GenerateRequest& r) { r.mutable_stopping()->set_max_new_tokens(40000); },
       grpc::StatusCode::RESOURCE_EXHAUSTED, "KV cache capacity of 32768 tokens"},
      {"negative temperature", [](GenerateRequest& r) { r.mutable_sampling()->set_temperature(-0.1f); },
       grpc::StatusCode::INVALID_ARGUMENT, "temperature"},
      {"NaN temperature", [](GenerateRequest& r) { r.mutable_sampling()->set_temperature(NAN); },
       grpc::StatusCode::INVALID_ARGUMENT, "temperature"},
      {"top_p 0", [](GenerateRequest& r) { r.mutable_sampling()->set_top_p(0); }, grpc::StatusCode::INVALID_ARGUMENT, "top_p must be in (0, 1]"},
      {"top_p 1.5", [](GenerateRequest& r) { r.mutable_sampling()->set_top_p(1.5f); }, grpc::StatusCode::INVALID_ARGUMENT, "top_p"},
      {"top_k -1", [](GenerateRequest& r) { r.mutable_sampling()->set_top_k(-1); }, grpc::StatusCode::INVALID_ARGUMENT, "top_k"},
      {"17 stop strings", [](GenerateRequest& r) { const std::vector<std::string> many(17, "stop"); r.mutable_stopping()->mutable_stop()->Assign(many.begin(), many.end()); },
       grpc::StatusCode::INVALID_ARGUMENT, "at most 16"},
      {"long stop string", [](GenerateRequest& r) { r.mutable_stopping()->add_stop(std::string(257, 'x')); },
       grpc::StatusCode::INVALID_ARGUMENT, "stop[0] is 257 bytes; at most 256"},
      {"top_logprobs 21", [](GenerateRequest& r) { r.mutable_options()->set_top_logprobs(21); },
       grpc::StatusCode::INVALID_ARGUMENT, "top_logprobs"},
      {"prompt over the model's context", [](GenerateRequest& r) {
         r.mutable_token_ids()->mutable_ids()->Resize(1048576, 7);
       }, grpc::StatusCode::INVALID_ARGUMENT, "the model's context limit is 1048576 tokens"},
  };
  for (const auto& c : cases) {
    GenerateRequest r = TextRequest("bad input", 4);
    c.change(r);
    const auto s = Generate(*server_->stub, r);
    EXPECT_EQ(s.status.error_code(), c.code) << c.name << ": " << s.status.error_message();
    EXPECT_NE(s.status.error_message().find(c.fragment), std::string::npos) << c.name << ": " << s.status.error_message();
    EXPECT_EQ(s.finished_messages, 0) << c.name;
  }
  ExpectServing(*server_);
}

grpc::ByteBuffer Bytes(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// `message` serialized, with each "BAD!" replaced by four bytes that are not UTF-8 (a lead byte
// without its continuation, then two stray continuation bytes): what a client that skips
// protobuf's UTF-8 check, or none at all, can send.
grpc::ByteBuffer WithInvalidUtf8(const google::protobuf::Message& message) {
  std::string bytes = message.SerializeAsString();
  for (size_t at = bytes.find("BAD!"); at != std::string::npos; at = bytes.find("BAD!", at))
    bytes.replace(at, 4, "\xc3\x28\xa0\xa1");
  return Bytes(bytes);
}

TEST_F(ServerTest, InvalidUtf8AndGarbageBytesNameTheFieldAndAreCounted) {
  const std::string generate = "/bptserve.v1.Inference/Generate";
  GenerateRequest text = TextRequest("BAD!");
  GenerateRequest stop = TextRequest("fine");
  stop.mutable_stopping()->add_stop("ok");
  stop.mutable_stopping()->add_stop("BAD!");
  GenerateRequest request_id = TextRequest("fine");
  request_id.set_request_id("BAD!");
  bptserve::v1::TokenizeRequest tokenize;
  tokenize.set_text("tokenize BAD!");
  struct Case {
    const char* method;
    grpc::ByteBuffer bytes;
    const char* fragment;
  };
  const std::vector<Case> cases = {
      {generate.c_str(), WithInvalidUtf8(text), "text: not valid UTF-8"},
      {generate.c_str(), WithInvalidUtf8(stop), "stopping.stop[1]: not valid UTF-8"},
      {generate.c_str(), WithInvalidUtf8(request_id), "request_id: not valid UTF-8"},
      {"/bptserve.v1.Inference/Tokenize", WithInvalidUtf8(tokenize), "text: not valid UTF-8"},
      {generate.c_str(), Bytes("\xff\xff\xff"), "not a valid bptserve.v1.GenerateRequest message"},
      {generate.c_str(), Bytes(TextRequest("cut short").SerializeAsString().substr(0, 5)),
       "not a valid bptserve.v1.GenerateRequest message"},
      {"/bptserve.v1.Inference/Detokenize", Bytes("\x0a\x05\x01"), "not a valid bptserve.v1.DetokenizeRequest message"},
  };
  const std::string series = "bptserve_request_errors_total{code=\"INVALID_ARGUMENT\"}";
  const double before = MetricValue(Metrics(), series);
  for (const auto& c : cases) {
    const grpc::Status s = testing::RawCall(server_->channel, c.method, c.bytes);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.fragment << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.fragment), std::string::npos) << s.error_message();
  }
  EXPECT_EQ(MetricValue(Metrics(), series), before + static_cast<double>(cases.size()));

  // Valid UTF-8 beyond ASCII, in every one of those fields, is served as before.
  GenerateRequest valid = TextRequest("Grüße, 世界 🌍", 3);
  valid.set_request_id("réquête-1");
  valid.mutable_stopping()->add_stop("ünlikely");
  const auto s = Generate(*server_->stub, valid);
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(s.token_ids.size(), 3u);
  const grpc::Status unknown = testing::RawCall(server_->channel, "/bptserve.v1.Inference/Nope", Bytes(""));
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(unknown.error_message().find("/bptserve.v1.Inference/Nope"), std::string::npos) << unknown.error_message();
  ExpectServing(*server_);
}

TEST_F(ServerTest, PrefixCacheReportsCachedTokensAndCountsThem) {
  const std::string before = Metrics();
  std::string document;
  for (int i = 0; i < 30; ++i) document += "A year of logs, a book, a contract: one long document. ";
  GenerateRequest request = TextRequest(document + "First question?", 8);
  request.mutable_sampling()->set_temperature(0);
  GenerateRequest bypass = request;
  bypass.mutable_options()->set_bypass_prefix_cache(true);
  const auto plain = Generate(*server_->stub, bypass);
  const auto first = Generate(*server_->stub, request);
  const auto second = Generate(*server_->stub, request);
  ASSERT_TRUE(plain.status.ok() && first.status.ok() && second.status.ok());
  EXPECT_EQ(plain.finished.usage().cached_prompt_tokens(), 0);
  EXPECT_EQ(first.finished.usage().cached_prompt_tokens(), 0);
  const int64_t prompt = second.finished.usage().prompt_tokens();
  EXPECT_EQ(second.finished.usage().cached_prompt_tokens(), (prompt - 1) / 64 * 64);  // whole 64-token blocks
  EXPECT_EQ(second.token_ids, plain.token_ids);
  const std::string after = Metrics();
  const double queries = MetricValue(after, "bptserve_prefix_cache_queries_total") -
                         MetricValue(before, "bptserve_prefix_cache_queries_total");
  const double hits = MetricValue(after, "bptserve_prefix_cache_hits_total") -
                      MetricValue(before, "bptserve_prefix_cache_hits_total");
  EXPECT_EQ(queries, 2 * prompt) << "the bypassed request is not counted";
  EXPECT_EQ(hits, second.finished.usage().cached_prompt_tokens());
}

// The KV layout the Inference Extension's endpoint picker reads (block_size: the unit the prefix
// cache above matches in), in the labels vLLM gives vllm:cache_config_info, with the CPU's
// default element type.
TEST_F(ServerTest, CacheConfigInfoCarriesTheKvBlockLayout) {
  const KvCacheOptions kv = LoopbackOptions(testing::DemoModelDir()).engine.kv_cache;
  const std::string series = "bptserve_cache_config_info{block_size=\"" + std::to_string(kv.block_size) +
                             "\",cache_dtype=\"fp32\",num_gpu_blocks=\"" +
                             std::to_string(kv.capacity_tokens / kv.block_size) + "\"}";
  EXPECT_EQ(MetricValue(Metrics(), series), 1.0) << Metrics();
}

// Batching shown by the batch-size histogram, not by timing: an occupier decodes in every step, so
// each step that runs one of the streams runs two requests or more, however the streams' arrivals
// fall. Had the server run requests one at a time, no step would.
TEST(ServerBatching, ConcurrentStreamsAreBatchedAndEachEqualsItsOwnRun) {
  TestServer t(LoopbackOptions(testing::DemoModelDir()));
  constexpr int kStreams = 8;
  constexpr int kTokens = 20;
  std::vector<GenerateRequest> requests;
  std::vector<testing::Stream> alone;
  for (int i = 0; i < kStreams; ++i) {
    requests.push_back(TextRequest("stream number " + std::to_string(i) + " of a batch", kTokens));
    requests.back().mutable_sampling()->set_seed(100 + i);
    requests.back().mutable_options()->set_bypass_prefix_cache(true);
    alone.push_back(Generate(*t.stub, requests.back()));
    ASSERT_TRUE(alone.back().status.ok());
  }
  Occupier occupier;
  ASSERT_TRUE(occupier.Start(t));
  const double multi_before = MultiRequestSteps(Metrics(t));
  std::vector<testing::Stream> together(kStreams);
  std::vector<std::thread> clients;
  for (int i = 0; i < kStreams; ++i)
    clients.emplace_back([&, i] { together[i] = Generate(*t.stub, requests[i]); });
  for (auto& c : clients) c.join();
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].finished_messages, 1);
    EXPECT_EQ(together[i].token_ids, alone[i].token_ids) << "stream " << i;
    EXPECT_EQ(together[i].text, alone[i].text);
  }
  // The worker counts a step after it returns, so the streams' last step may be uncounted when their
  // ends arrive; a request admitted after them ends only after it is counted.
  ExpectServing(t);
  const std::string m = Metrics(t);
  // Each stream ran in one step per token (its prompt's step yields the first), each with the occupier.
  EXPECT_GE(MultiRequestSteps(m) - multi_before, kTokens);
  EXPECT_EQ(MetricValue(m, "bptserve_num_requests_running"), 1) << "the streams left; the occupier runs on";
  EXPECT_EQ(occupier.Cancel().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(ServerTest, TokenizeDetokenizeAndModelInfo) {
  grpc::ClientContext c1;
  bptserve::v1::TokenizeRequest treq;
  treq.set_text("Hello world");
  treq.set_add_bos(true);
  bptserve::v1::TokenizeResponse tres;
  ASSERT_TRUE(server_->stub->Tokenize(&c1, treq, &tres).ok());
  ASSERT_GT(tres.token_ids_size(), 1);
  EXPECT_EQ(tres.token_ids(0), 1);
  grpc::ClientContext c2;
  bptserve::v1::DetokenizeRequest dreq;
  dreq.mutable_token_ids()->CopyFrom(tres.token_ids());
  bptserve::v1::DetokenizeResponse dres;
  ASSERT_TRUE(server_->stub->Detokenize(&c2, dreq, &dres).ok());
  EXPECT_EQ(dres.text(), "Hello world");
  grpc::ClientContext c3;
  dreq.add_token_ids(5000);
  EXPECT_EQ(server_->stub->Detokenize(&c3, dreq, &dres).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext c4;
  bptserve::v1::ModelInfo info;
  ASSERT_TRUE(server_->stub->GetModelInfo(&c4, {}, &info).ok());
  EXPECT_EQ(info.architecture(), "LlamaForCausalLM");
  EXPECT_EQ(info.context_limit_tokens(), 1048576);
  EXPECT_EQ(info.kv_capacity_tokens(), 32768);
  EXPECT_EQ(info.device(), "cpu");
  EXPECT_EQ(info.dtype(), "float32");
  EXPECT_EQ(info.weight_dtype(), "fp32");  // the CPU's default: the exact reference
  EXPECT_EQ(info.kv_dtype(), "fp32");
  EXPECT_EQ(info.attention_kernels().rfind("cpu-", 0), 0u) << info.attention_kernels();
  EXPECT_FALSE(info.token_ids_mode());
}

// A model whose generation_config.json says greedy: requests that leave temperature unset are
// greedy (the same tokens as asking for temperature 0), GetModelInfo says so, and
// --generation-config none goes back to bptserve's defaults (temperature 1).
TEST(ServerGenerationConfig, ItsSamplingDefaultsApplyToUnsetFields) {
  testing::TempDir dir;
  std::filesystem::copy(testing::DemoModelDir(), dir.path(), std::filesystem::copy_options::recursive);
  std::ofstream(dir / "generation_config.json") << R"({"temperature": 0.0, "top_p": 0.9, "top_k": null})";
  for (const std::string mode : {"auto", "none"}) {
    auto options = LoopbackOptions(dir.path());
    options.engine.generation_config = mode;
    TestServer t(options);
    grpc::ClientContext context;
    bptserve::v1::ModelInfo info;
    ASSERT_TRUE(t.stub->GetModelInfo(&context, {}, &info).ok());
    EXPECT_FLOAT_EQ(info.default_sampling().temperature(), mode == "auto" ? 0.0f : 1.0f) << mode;
    EXPECT_FLOAT_EQ(info.default_sampling().top_p(), mode == "auto" ? 0.9f : 1.0f) << mode;
    EXPECT_EQ(info.default_sampling().top_k(), 0) << mode;
    if (mode == "none") continue;
    GenerateRequest unset = TextRequest("The defaults come from the model's own file.", 24);
    unset.mutable_sampling()->clear_temperature();
    GenerateRequest greedy = unset;
    greedy.mutable_sampling()->set_temperature(0);
    greedy.mutable_sampling()->set_top_p(0.9f);
    const auto a = Generate(*t.stub, unset), b = Generate(*t.stub, greedy);
    ASSERT_TRUE(a.status.ok()) << a.status.error_message();
    ASSERT_TRUE(b.status.ok()) << b.status.error_message();
    EXPECT_EQ(a.token_ids, b.token_ids);
    EXPECT_EQ(a.token_ids.size(), 24u);
  }
}

TEST(ServerTokenIdsMode, IdsServedTextRefusedModeReported) {
  testing::TempDir dir;
  std::filesystem::copy(testing::DemoModelDir(), dir.path(), std::filesystem::copy_options::recursive);
  std::filesystem::remove(dir / "tokenizer.model");
  TestServer t(LoopbackOptions(dir.path()));
  grpc::ClientContext context;
  bptserve::v1::ModelInfo info;
  ASSERT_TRUE(t.stub->GetModelInfo(&context, {}, &info).ok());
  EXPECT_TRUE(info.token_ids_mode());
  auto s = Generate(*t.stub, TextRequest("text needs a tokenizer", 2));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.status.error_message().find("token-ids mode"), std::string::npos) << s.status.error_message();
  GenerateRequest ids = LongRequest(10, 3);
  ids.mutable_stopping()->add_stop("x");
  s = Generate(*t.stub, ids);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.status.error_message().find("stop"), std::string::npos) << s.status.error_message();
  s = Generate(*t.stub, LongRequest(10, 3));
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(s.token_ids.size(), 3u);
  EXPECT_TRUE(s.text.empty());
}

TEST(ServerLimits, MessageSizePromptLimitAndQueue) {
  auto options = LoopbackOptions(testing::DemoModelDir());
  options.max_message_mb = 1;
  options.max_prompt_tokens = 100;
  options.engine.scheduler.max_queue = 1;
  options.engine.scheduler.max_running = 1;
  TestServer t(options);
  auto s = Generate(*t.stub, TextRequest(std::string(2 << 20, 'a')));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.status.error_message();
  std::string long_prompt(2000, 'a');
  long_prompt += " and more words than one hundred tokens";
  s = Generate(*t.stub, TextRequest(long_prompt));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.status.error_message().find("at most 100 (--max-prompt-tokens)"), std::string::npos) << s.status.error_message();
  // The refused prompt counts nowhere once its client has heard.
  EXPECT_EQ(MetricValue(testing::HttpGet(t.server->metrics_port(), "/metrics"), "bptserve_num_requests_waiting"), 0);
  {  // Tokenize has the prompts' limit, and stops at it
    grpc::ClientContext context;
    bptserve::v1::TokenizeRequest tokenize;
    tokenize.set_text(long_prompt);
    bptserve::v1::TokenizeResponse ids;
    const grpc::Status refused = t.stub->Tokenize(&context, tokenize, &ids);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(refused.error_message().find("text has more than 100 tokens; this server accepts at most 100"),
              std::string::npos)
        << refused.error_message();
  }

  // One request decoding, one waiting: the third finds the queue full.
  grpc::ClientContext running_context, waiting_context;
  auto running = t.stub->Generate(&running_context, TextRequest("occupy the engine", 30000));
  bptserve::v1::GenerateResponse r;
  ASSERT_TRUE(running->Read(&r));  // the first token: it is running, not waiting
  auto waiting = t.stub->Generate(&waiting_context, TextRequest("wait", 2));
  ASSERT_TRUE(MetricReaches(t, "bptserve_num_requests_waiting", 1));  // queued behind the first
  s = Generate(*t.stub, TextRequest("no room", 2));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.status.error_message().find("--max-queue"), std::string::npos) << s.status.error_message();
  running_context.TryCancel();
  while (running->Read(&r)) {
  }
  EXPECT_EQ(running->Finish().error_code(), grpc::StatusCode::CANCELLED);
  while (waiting->Read(&r)) {
  }
  EXPECT_TRUE(waiting->Finish().ok());
  ExpectServing(t);
}

// ListServices through a reflection stream, as grpcurl starts.
grpc::Status ListServices(const std::shared_ptr<grpc::Channel>& channel, const std::string& authorization,
                          std::vector<std::string>* services) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  while (stream->Read(&response))
    for (const auto& s : response.list_services_response().service()) services->push_back(s.name());
  return stream->Finish();
}

// Two questions about one file on one stream: each answer carries the file itself; only the
// dependencies already sent on the stream are left out.
TEST_F(ServerTest, ReflectionAnswersTheSameFileTwiceOnOneStream) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(server_->channel);
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  std::vector<std::vector<std::string>> answers;
  for (const char* symbol : {"bptserve.v1.Inference", "bptserve.v1.GenerateRequest"}) {
    grpc::reflection::v1alpha::ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    ASSERT_TRUE(stream->Write(request));
    grpc::reflection::v1alpha::ServerReflectionResponse response;
    ASSERT_TRUE(stream->Read(&response));
    answers.emplace_back();
    for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      answers.back().push_back(file.name());
    }
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_FALSE(answers[0].empty());
  EXPECT_EQ(answers[0][0], "bptserve/v1/bptserve.proto");
  EXPECT_EQ(answers[1], std::vector<std::string>{"bptserve/v1/bptserve.proto"});
}

TEST(ServerAuth, ApiKeys) {
  testing::TempDir dir;
  std::ofstream(dir / "keys") << "# keys\nsecret-one\nsecret-two\n";
  auto options = LoopbackOptions(testing::DemoModelDir());
  options.api_key_file = dir / "keys";
  TestServer t(options);
  auto s = Generate(*t.stub, TextRequest("hi", 2));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.status.error_message().find("missing"), std::string::npos);
  grpc::ClientContext wrong;
  wrong.AddMetadata("authorization", "Bearer secret-three");
  s = Generate(*t.stub, TextRequest("hi", 2), &wrong);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext right;
  right.AddMetadata("authorization", "Bearer secret-two");
  s = Generate(*t.stub, TextRequest("hi", 2), &right);
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(t.Health("bptserve.v1.Inference"), grpc::health::v1::HealthCheckResponse::SERVING);  // exempt

  // RFC 7235: the scheme is case-insensitive.
  for (const char* scheme : {"bearer", "BEARER", "beArer"}) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string(scheme) + " secret-one");
    s = Generate(*t.stub, TextRequest("hi", 2), &context);
    EXPECT_TRUE(s.status.ok()) << scheme << ": " << s.status.error_message();
  }
  // Two credentials, whichever is right: which one counts is ambiguous, so neither does.
  for (const auto& [first, second] : {std::pair{"Bearer secret-one", "Bearer secret-three"},
                                      std::pair{"Bearer secret-three", "Bearer secret-one"}}) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", first);
    context.AddMetadata("authorization", second);
    s = Generate(*t.stub, TextRequest("hi", 2), &context);
    EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_NE(s.status.error_message().find("more than one 'authorization'"), std::string::npos) << s.status.error_message();
  }
  grpc::ClientContext no_token;
  no_token.AddMetadata("authorization", "Bearer ");
  s = Generate(*t.stub, TextRequest("hi", 2), &no_token);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // Reflection describes the API: only to a caller with a key.
  std::vector<std::string> services;
  grpc::Status listed = ListServices(t.channel, "", &services);
  EXPECT_EQ(listed.error_code(), grpc::StatusCode::UNAUTHENTICATED) << listed.error_message();
  EXPECT_TRUE(services.empty());
  listed = ListServices(t.channel, "Bearer secret-one", &services);
  EXPECT_TRUE(listed.ok()) << listed.error_message();
  EXPECT_EQ(services, (std::vector<std::string>{"bptserve.v1.Inference", "grpc.health.v1.Health",
                                                "grpc.reflection.v1alpha.ServerReflection"}));
}

TEST(ServerAuth, ReflectionWithoutKeyOnlyWhenAsked) {
  testing::TempDir dir;
  std::ofstream(dir / "keys") << "secret-one\n";
  auto options = LoopbackOptions(testing::DemoModelDir());
  options.api_key_file = dir / "keys";
  options.reflection_without_key = true;
  TestServer t(options);
  std::vector<std::string> services;
  const grpc::Status listed = ListServices(t.channel, "", &services);
  EXPECT_TRUE(listed.ok()) << listed.error_message();
  EXPECT_EQ(services.size(), 3u);
  const auto s = Generate(*t.stub, TextRequest("hi", 2));  // the API itself still needs the key
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(ServerHealth, NotServingUntilLoadedThenServing) {
  // config.json is a FIFO: loading blocks on it until the test writes the real config.
  testing::TempDir dir;
  std::filesystem::copy(testing::DemoModelDir(), dir / "model");
  std::filesystem::rename(dir / "model/config.json", dir / "config.json");
  ASSERT_EQ(mkfifo((dir / "model/config.json").c_str(), 0600), 0);
  TestServer t(LoopbackOptions(dir / "model"), /*wait_for_model=*/false);
  EXPECT_EQ(t.Health(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(t.Health("bptserve.v1.Inference"), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  auto s = Generate(*t.stub, TextRequest("too early", 2));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.status.error_message().find("loading"), std::string::npos);
  {
    std::ifstream real(dir / "config.json");
    std::ofstream fifo(dir / "model/config.json");
    fifo << real.rdbuf();
  }
  ASSERT_TRUE(t.server->WaitUntilLoaded().ok());
  EXPECT_EQ(t.Health("bptserve.v1.Inference"), grpc::health::v1::HealthCheckResponse::SERVING);
  ExpectServing(t);
}

TEST(ServerDrain, InFlightFinishesNewRequestsRefusedReadinessDown) {
  TestServer t(LoopbackOptions(testing::DemoModelDir()));
  // In flight as well, until the test cancels it: the drain cannot end, nor the server stop, before.
  Occupier holder;
  ASSERT_TRUE(holder.Start(t));
  grpc::ClientContext context;
  auto in_flight = t.stub->Generate(&context, TextRequest("finish me", 300));
  bptserve::v1::GenerateResponse first;
  ASSERT_TRUE(in_flight->Read(&first));
  // Keep reading: unread data would fill the connection's flow-control window and stall the
  // health checks that share it.
  int tokens = first.has_tokens() ? first.tokens().token_ids_size() : 0;
  grpc::Status in_flight_status;
  std::thread reader([&] {
    bptserve::v1::GenerateResponse r;
    while (in_flight->Read(&r))
      if (r.has_tokens()) tokens += r.tokens().token_ids_size();
    in_flight_status = in_flight->Finish();
  });
  std::thread drain([&] { t.server->Drain(); });
  EXPECT_TRUE(HealthReaches(t, "bptserve.v1.Inference", grpc::health::v1::HealthCheckResponse::NOT_SERVING));
  const auto refused = Generate(*t.stub, TextRequest("too late", 2));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  reader.join();
  EXPECT_TRUE(in_flight_status.ok()) << in_flight_status.error_message();
  EXPECT_EQ(tokens, 300);
  EXPECT_EQ(holder.Cancel().error_code(), grpc::StatusCode::CANCELLED);
  drain.join();
}

// No drain time: the drain's deadline has passed as it starts, so a request in flight (30000 tokens
// to go) ends CANCELLED at once, saying why.
TEST(ServerDrain, PastTheDrainTimeInFlightEndsCancelled) {
  auto options = LoopbackOptions(testing::DemoModelDir());
  options.drain_seconds = 0;
  TestServer t(options);
  grpc::ClientContext context;
  auto in_flight = t.stub->Generate(&context, TextRequest("never finishes in time", 30000));
  bptserve::v1::GenerateResponse r;
  ASSERT_TRUE(in_flight->Read(&r));
  t.server->Drain();
  while (in_flight->Read(&r)) {
  }
  const grpc::Status s = in_flight->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_NE(s.error_message().find("shutting down"), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace bpt
