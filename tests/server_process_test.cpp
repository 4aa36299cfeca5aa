// The server over TLS and mTLS (certificates made by openssl here), and the real binary's
// SIGTERM drain and exit code, and its refusal of a GPU it does not have.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include "engine.h"
#include "server_test_util.h"
#include "test_certificates.h"
#include "test_models.h"

namespace bpt {
namespace {

using testing::LoopbackOptions;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

grpc::Status Ping(const std::shared_ptr<grpc::ChannelCredentials>& creds, int port) {
  auto channel = grpc::CreateChannel("localhost:" + std::to_string(port), creds);
  auto stub = bptserve::v1::Inference::NewStub(channel);
  grpc::ClientContext context;
  // Only bounds a failure: a refused handshake ends the call at once, without waiting for it.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(1));
  bptserve::v1::ModelInfo info;
  return stub->GetModelInfo(&context, {}, &info);
}

// The server binary on free ports with `flags`, for a start that is expected to fail: its stdout
// and stderr, once it has exited with *status.
std::string RunServerToExit(const std::string& flags, int* status) {
  const std::string command = std::string(BPTSERVE_BIN_DIR) +
                              "/bptserve --host 127.0.0.1 --port 0 --metrics-port 0 --http-port -1 " + flags + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  if (pipe == nullptr) return output;
  char buffer[512];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  *status = pclose(pipe);
  return output;
}

TEST(ServerTls, TlsAndMutualTls) {
  testing::TempDir dir;
  testing::MakeCertificates(dir);
  grpc::SslCredentialsOptions trust_only;
  trust_only.pem_root_certs = Read(dir / "ca.pem");
  grpc::SslCredentialsOptions with_client_cert = trust_only;
  with_client_cert.pem_private_key = Read(dir / "client.key");
  with_client_cert.pem_cert_chain = Read(dir / "client.pem");

  auto options = LoopbackOptions(testing::DemoModelDir());
  options.tls_cert = dir / "server.pem";
  options.tls_key = dir / "server.key";
  {
    testing::TestServer tls(options);
    EXPECT_TRUE(Ping(grpc::SslCredentials(trust_only), tls.server->port()).ok());
    EXPECT_FALSE(Ping(grpc::InsecureChannelCredentials(), tls.server->port()).ok());
  }
  options.tls_client_ca = dir / "ca.pem";
  {
    testing::TestServer mtls(options);
    EXPECT_TRUE(Ping(grpc::SslCredentials(with_client_cert), mtls.server->port()).ok());
    EXPECT_FALSE(Ping(grpc::SslCredentials(trust_only), mtls.server->port()).ok());
  }
}

TEST(ServerProcess, SigtermDrainsAndExitsZero) {
  testing::ServerProcess server({"--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1", "--http-port", "-1", "--kv-capacity", "32768"});
  int port = 0;
  sscanf(server.WaitForLine("listening on port").c_str(), "listening on port %d", &port);
  ASSERT_GT(port, 0) << "the server never said where it listens";
  ASSERT_NE(server.WaitForLine("model loaded"), "") << "the server never said it loaded the model";

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = bptserve::v1::Inference::NewStub(channel);
  auto health = grpc::health::v1::Health::NewStub(channel);
  {  // readiness is up by the time the server says it is serving
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service("bptserve.v1.Inference");
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok());
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }

  bptserve::v1::GenerateRequest request;
  request.set_text("drain me");
  request.mutable_stopping()->set_max_new_tokens(200);
  request.mutable_stopping()->set_ignore_eos(true);
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, request);
  bptserve::v1::GenerateResponse r;
  ASSERT_TRUE(reader->Read(&r));
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
  int tokens = r.has_tokens() ? r.tokens().token_ids_size() : 0;
  while (reader->Read(&r))
    if (r.has_tokens()) tokens += r.tokens().token_ids_size();
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(tokens, 200);
  const int status = server.Wait();
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Unauthenticated requests are refused from their metadata, before their messages are read: four
// concurrent 200 MiB requests leave the server's peak memory where it was (37 MiB). Read first, as
// before, they took it from 38 MiB to 1567 MiB.
TEST(ServerProcess, UnauthenticatedLargeRequestsAreRefusedBeforeTheirMessageIsRead) {
  testing::TempDir dir;
  std::ofstream(dir / "keys") << "secret-one\n";
  testing::ServerProcess server({"--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1", "--http-port", "-1", "--kv-capacity", "32768",
                                 "--api-key-file", dir / "keys"});
  int port = 0;
  sscanf(server.WaitForLine("listening on port").c_str(), "listening on port %d", &port);
  ASSERT_GT(port, 0) << "the server never said where it listens";
  ASSERT_NE(server.WaitForLine("model loaded"), "");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());

  constexpr int kRequests = 4;
  constexpr size_t kPromptBytes = size_t{200} << 20;
  bptserve::v1::GenerateRequest request;
  request.set_text(std::string(kPromptBytes, 'a'));
  grpc::Slice slice(request.SerializeAsString());
  request.Clear();
  const grpc::ByteBuffer bytes(&slice, 1);  // shared by the four calls: one copy in this process

  const int64_t rss_before = server.MemoryBytes("VmRSS"), peak_before = server.MemoryBytes("VmHWM");
  std::vector<grpc::Status> statuses(kRequests);
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i)
    clients.emplace_back([&, i] {
      statuses[i] = testing::RawCall(channel, "/bptserve.v1.Inference/Generate", bytes,
                                     {{"authorization", i % 2 ? "Bearer wrong" : "Basic c2VjcmV0LW9uZQ=="}});
    });
  for (auto& c : clients) c.join();
  const int64_t rss_after = server.MemoryBytes("VmRSS"), peak_after = server.MemoryBytes("VmHWM");
  std::cout << "server memory: VmRSS " << (rss_before >> 20) << " -> " << (rss_after >> 20) << " MiB, VmHWM "
            << (peak_before >> 20) << " -> " << (peak_after >> 20) << " MiB after " << kRequests << " x "
            << (kPromptBytes >> 20) << " MiB unauthenticated requests\n";
  for (const auto& s : statuses) EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_LT(peak_after - peak_before, int64_t{64} << 20) << "the server read what it should have refused";

  auto stub = bptserve::v1::Inference::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer secret-one");
  bptserve::v1::ModelInfo info;
  EXPECT_TRUE(stub->GetModelInfo(&context, {}, &info).ok());
}

// The gRPC port is taken: the process says so and exits 1, its metrics endpoint (already serving)
// shut down on the way out rather than holding the process.
TEST(ServerProcess, PortInUseExitsWithTheReason) {
  const int taken = socket(AF_INET, SOCK_STREAM, 0);  // no SO_REUSEPORT: nobody else may bind it
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  testing::ServerProcess server({"--host", "127.0.0.1", "--port", port, "--metrics-port", "0", "--http-port", "-1"});
  const int status = server.Wait();
  close(taken);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
}

// --device cuda where there is no GPU (or no CUDA backend): the process says why and exits 1
// before it listens.
TEST(ServerProcess, DeviceCudaWithoutAGpuExitsWithTheReason) {
  if (Engine::CheckDevice("cuda").ok()) GTEST_SKIP() << "this machine has a CUDA device";
  int status = 0;
  const std::string output = RunServerToExit("--device cuda", &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_NE(output.find("FAILED_PRECONDITION: device cuda:"), std::string::npos) << output;
  EXPECT_EQ(output.find("listening on port"), std::string::npos) << output;
}

// A storage flag's value that is none of its spellings stops the process before it listens, with
// a message that names the flag and the values it takes.
TEST(ServerProcess, BadKvDtypeExitsNamingTheFlag) {
  int status = 0;
  const std::string output = RunServerToExit("--kv-dtype fp16", &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0) << output;
  EXPECT_NE(output.find("--kv-dtype: 'fp16' is not one of auto, fp32, bf16"), std::string::npos) << output;
  EXPECT_EQ(output.find("listening on port"), std::string::npos) << output;
}

TEST(ServerProcess, BadAttentionBackendExitsNamingTheFlag) {
  int status = 0;
  const std::string output = RunServerToExit("--attention-backend flash", &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0) << output;
  EXPECT_NE(output.find("--attention-backend: 'flash' is not one of auto, cudnn, own"), std::string::npos) << output;
  EXPECT_EQ(output.find("listening on port"), std::string::npos) << output;
}

// TLS flags for Redis without rediss:// stop the process naming the flag; a CA file that cannot
// be read stops it at start (as it loads the model) naming the field.
TEST(ServerProcess, RedisTlsFlagsWithoutRedissOrTheirFilesExitNamingThem) {
  testing::TempDir dir;
  std::ofstream(dir / "hmac") << "0123456789abcdef0123456789abcdef\n";
  const std::string tier = "--device cpu --kv-tier-key-file " + (dir / "hmac") + " --kv-remote-tls-ca-file " + (dir / "ca.pem");
  int status = 0;
  std::string output = RunServerToExit(tier + " --kv-remote redis://127.0.0.1:1", &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0) << output;
  EXPECT_NE(output.find("--kv-remote-tls-ca-file: needs a TLS --kv-remote, rediss://"), std::string::npos) << output;
  output = RunServerToExit(tier + " --kv-remote rediss://127.0.0.1:1", &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_NE(output.find("TLS: CA " + (dir / "ca.pem")), std::string::npos) << "the summary: " << output;
  EXPECT_NE(output.find("NOT_FOUND: kv_remote_tls_ca_file '" + (dir / "ca.pem") + "' cannot be read"), std::string::npos)
      << output;
}

// cuDNN asked for on the CPU is an error, not a flag silently ignored.
TEST(ServerProcess, CudnnAttentionOnTheCpuExitsWithTheReason) {
  int status = 0;
  const std::string output = RunServerToExit("--device cpu --attention-backend cudnn", &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_NE(output.find("INVALID_ARGUMENT: attention_backend cudnn: cuDNN runs on CUDA only"), std::string::npos)
      << output;
}

}  // namespace
}  // namespace bpt
