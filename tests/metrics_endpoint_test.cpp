// The metrics port as a scanner, a load balancer or a mistyped scrape config sees it: whatever
// arrives, the server answers with an HTTP status and keeps serving. Against the real binary,
// since the failure this guards against (a worker thread overrunning its stack) kills the
// process; once with the CUDA plugin loaded, whose libraries bring large thread-local storage.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "server_test_util.h"

namespace bpt {
namespace {

int StatusCodeOf(const std::string& response) {
  int code = 0;
  return std::sscanf(response.c_str(), "HTTP/1.%*d %d", &code) == 1 ? code : 0;
}

std::string Request(const std::string& method, const std::string& path) {
  return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

bool MapsLibrary(pid_t pid, const std::string& name) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::stringstream ss;
  ss << maps.rdbuf();
  return ss.str().find(name) != std::string::npos;
}

void ProbeEveryRequestShape(testing::ServerProcess& server, int metrics_port) {
  struct Case {
    std::string method, path;
    int expected;
  };
  const std::string long_path = "/" + std::string(16 * 1024, 'a');
  std::vector<Case> cases = {{"GET", "/metrics", 200},     {"HEAD", "/metrics", 200},   {"GET", "/", 404},
                             {"HEAD", "/", 404},           {"GET", "/nope", 404},       {"GET", "/metrics/x", 404},
                             {"GET", "/metricsx", 404},    {"GET", long_path, 414},     {"FOO", "/metrics", 400},
                             {"TRACE", "/metrics", 400},   {"CONNECT", "/metrics", 400}};
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    cases.push_back({method, "/metrics", 405});
    cases.push_back({method, "/", 404});
  }
  for (const Case& c : cases) {
    const std::string response = testing::HttpExchange(metrics_port, Request(c.method, c.path));
    EXPECT_EQ(StatusCodeOf(response), c.expected) << c.method << " " << c.path.substr(0, 40) << ": " << response.substr(0, 200);
    ASSERT_TRUE(server.Running()) << c.method << " " << c.path.substr(0, 40) << " killed the server";
  }
  // Not HTTP at all, and a request line that never ends.
  EXPECT_EQ(StatusCodeOf(testing::HttpExchange(metrics_port, "\x16\x03\x01garbage\r\n\r\n")), 400);
  testing::HttpExchange(metrics_port, "GET /" + std::string(64 * 1024, 'b'));
  ASSERT_TRUE(server.Running());
  const std::string head = testing::HttpExchange(metrics_port, Request("HEAD", "/metrics"));
  EXPECT_EQ(head.find("bptserve_"), std::string::npos) << "HEAD carries no body";
  EXPECT_NE(testing::HttpGet(metrics_port, "/metrics").find("bptserve_request_success_total"), std::string::npos);
}

int MetricsPortOf(const std::string& listening_line) {
  int port = 0, metrics = 0;
  std::sscanf(listening_line.c_str(), "listening on port %d, metrics on port %d", &port, &metrics);
  return metrics;
}

TEST(MetricsEndpoint, AnswersEveryMethodAndPathAndKeepsServing) {
  testing::ServerProcess server({"--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--http-port", "-1", "--device", "cpu",
                                 "--kv-capacity", "4096"});
  const int metrics_port = MetricsPortOf(server.WaitForLine("listening on port"));
  ASSERT_GT(metrics_port, 0);
  ASSERT_NE(server.WaitForLine("model loaded"), "");
  ProbeEveryRequestShape(server, metrics_port);
}

TEST(MetricsEndpoint, KeepsServingWithTheCudaPluginLoaded) {
  struct stat st {};
  const std::string plugin = std::string(BPTSERVE_BIN_DIR) + "/libbptserve_cuda.so";
  if (stat(plugin.c_str(), &st) != 0) GTEST_SKIP() << "this build has no CUDA plugin";
  // --device auto loads the plugin to look for a GPU, and falls back to the CPU without one.
  testing::ServerProcess server({"--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--http-port", "-1", "--device", "auto",
                                 "--kv-capacity", "4096"});
  const int metrics_port = MetricsPortOf(server.WaitForLine("listening on port"));
  ASSERT_GT(metrics_port, 0);
  ASSERT_NE(server.WaitForLine("model loaded"), "");
  ASSERT_TRUE(MapsLibrary(server.pid(), "libbptserve_cuda.so"));
  ProbeEveryRequestShape(server, metrics_port);
}

}  // namespace
}  // namespace bpt
