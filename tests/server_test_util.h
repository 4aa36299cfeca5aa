// An in-process bptserve on ephemeral loopback ports, and a client for it.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bptserve/v1/bptserve.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "bptserve_server.h"

namespace bpt::testing {

inline std::string DemoModelDir() {
  const std::string tokenizer = BPTSERVE_DEMO_TOKENIZER;
  return tokenizer.substr(0, tokenizer.rfind('/'));
}

inline server::ServerOptions LoopbackOptions(const std::string& model_dir) {
  server::ServerOptions o;
  o.engine.model_dir = model_dir;
  o.host = "127.0.0.1";
  o.port = 0;
  o.metrics_port = 0;
  o.http_port = 0;
  o.engine.scheduler.prefill_block = 64;
  o.engine.kv_cache.capacity_tokens = 32768;
  o.drain_seconds = 30;
  return o;
}

struct TestServer {
  explicit TestServer(server::ServerOptions options, bool wait_for_model = true)
      : server(std::make_unique<server::BptServer>(std::move(options))) {
    const Status started = server->Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
    if (wait_for_model) {
      const Status loaded = server->WaitUntilLoaded();
      EXPECT_TRUE(loaded.ok()) << loaded.ToString();
    }
    channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials());
    stub = bptserve::v1::Inference::NewStub(channel);
    health = grpc::health::v1::Health::NewStub(channel);
  }

  std::string Address() const { return "127.0.0.1:" + std::to_string(server->port()); }

  // SERVING, NOT_SERVING, ... of a health service name.
  grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& service) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status s = health->Check(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.status();
  }

  std::unique_ptr<server::BptServer> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<bptserve::v1::Inference::Stub> stub;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
};

// Everything a Generate stream returned.
struct Stream {
  std::vector<bptserve::v1::PrefillProgress> progress;
  std::vector<int32_t> token_ids;
  std::string text;
  int chunks = 0;
  int finished_messages = 0;
  bptserve::v1::Finished finished;
  grpc::Status status;
};

// Reads a server stream to its end: progress and the finished messages into `out` (a Stream or
// a PrefillStream), each other message to on_other; the status last.
template <typename Response, typename Out, typename OnOther>
void ReadStream(grpc::ClientReader<Response>& reader, Out* out, OnOther on_other) {
  Response r;
  while (reader.Read(&r)) {
    if (r.has_prefill_progress()) out->progress.push_back(r.prefill_progress());
    if (r.has_finished()) {
      ++out->finished_messages;
      out->finished = r.finished();
    }
    on_other(r);
  }
  out->status = reader.Finish();
}

inline Stream Generate(bptserve::v1::Inference::Stub& stub, const bptserve::v1::GenerateRequest& request,
                       grpc::ClientContext* context = nullptr) {
  grpc::ClientContext own;
  Stream out;
  ReadStream(*stub.Generate(context != nullptr ? context : &own, request), &out,
             [&out](const bptserve::v1::GenerateResponse& r) {
               if (!r.has_tokens()) return;
               ++out.chunks;
               out.token_ids.insert(out.token_ids.end(), r.tokens().token_ids().begin(), r.tokens().token_ids().end());
               out.text += r.tokens().text();
             });
  return out;
}

// Everything a Prefill stream returned.
struct PrefillStream {
  std::vector<bptserve::v1::PrefillProgress> progress;
  int finished_messages = 0;
  bptserve::v1::PrefillFinished finished;
  grpc::Status status;
};

inline PrefillStream Prefill(bptserve::v1::Inference::Stub& stub, const bptserve::v1::PrefillRequest& request,
                             grpc::ClientContext* context = nullptr) {
  grpc::ClientContext own;
  PrefillStream out;
  ReadStream(*stub.Prefill(context != nullptr ? context : &own, request), &out,
             [](const bptserve::v1::PrefillResponse&) {});
  return out;
}

// The value of one series (`name{labels}` as exposed) in a scrape; NaN when absent.
double MetricValue(const std::string& text, const std::string& series);

// Sends `request` as is to 127.0.0.1:port and returns everything the server wrote back before
// closing (the metrics endpoint).
std::string HttpExchange(int port, const std::string& request);
// GET http://127.0.0.1:port/path, body only.
std::string HttpGet(int port, const std::string& path);
// The server's /metrics.
inline std::string ScrapeMetrics(TestServer& t) { return HttpGet(t.server->metrics_port(), "/metrics"); }
// Polls /metrics until `series` reads `value`; false only after a minute. For what the server
// does after its client stopped listening (noticing a cancel or a passed deadline, publishing
// what the KV tiers did): no event reaches the client then. The minute only bounds a failure; it
// never decides a pass.
bool MetricReaches(TestServer& t, const std::string& series, double value);

// The real bptserve binary as a child process, its stdout read line by line.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& args);
  ~ServerProcess();  // SIGKILL if still running
  // Reads stdout until a line starting with `prefix`; that line, or "" at end of output.
  std::string WaitForLine(const std::string& prefix);
  pid_t pid() const { return pid_; }
  bool Running();
  int Wait();  // the waitpid status
  // A /proc/<pid>/status field in bytes: VmRSS (resident now) or VmHWM (the peak so far).
  int64_t MemoryBytes(const std::string& field) const;

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  bool reaped_ = false;
  int status_ = 0;
};

// One message of raw bytes to `method` (e.g. "/bptserve.v1.Inference/Generate") with the given
// metadata, through a generic stub, as a client that does not use the .proto would send it.
// Any response messages are dropped; the status comes back.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const grpc::ByteBuffer& request, const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace bpt::testing
