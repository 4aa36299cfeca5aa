// The Prometheus scrape endpoint: GET (and HEAD) /metrics over HTTP/1.1, served by cpp-httplib
// from a fixed set of threads with ordinary stacks. prometheus-cpp's own exposer runs civetweb,
// whose worker threads have fixed 100 KiB stacks: glibc carves every linked library's static
// TLS out of a thread's stack (OpenBLAS, linked then, took 60 KiB alone), so civetweb's error path overran
// what was left and any request but `GET /metrics` killed the server.
#pragma once

#include <prometheus/registry.h>

#include <future>
#include <memory>
#include <string>
#include <thread>

#include "status.h"

namespace httplib {
class Server;
}

namespace bpt::server {

class MetricsEndpoint {
 public:
  // Binds host:port (0: any free port) and serves until destroyed.
  static StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& host, int port,
                                                          std::shared_ptr<prometheus::Registry> registry);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }

 private:
  MetricsEndpoint() = default;

  std::unique_ptr<httplib::Server> http_;
  int port_ = -1;
  std::thread listener_;
  std::future<void> listening_ended_;
};

}  // namespace bpt::server
