#include "metrics_endpoint.h"

#include <httplib.h>
#include <prometheus/text_serializer.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <vector>

namespace bpt::server {
namespace {

// Scrapes are rare and small: a few threads, a short queue, small request limits.
constexpr size_t kThreads = 4;
constexpr size_t kQueuedConnections = 16;
constexpr size_t kMaxRequestBodyBytes = 64 * 1024;
constexpr time_t kReadTimeoutSeconds = 5;
constexpr time_t kWriteTimeoutSeconds = 5;

// cpp-httplib's own pool queues connections without limit, each holding a socket. This one
// blocks the accepting thread instead, so a flood of connections waits in the kernel's backlog
// and the metrics port never takes more than kThreads + kQueuedConnections descriptors.
class BoundedConnectionQueue final : public httplib::TaskQueue {
 public:
  BoundedConnectionQueue() {
    for (size_t i = 0; i < kThreads; ++i) workers_.emplace_back([this] { Work(); });
  }

  void enqueue(std::function<void()> fn) override {
    // Only the accepting thread enqueues, and it calls shutdown() after its last enqueue.
    std::unique_lock<std::mutex> lock(mu_);
    space_.wait(lock, [&] { return jobs_.size() < kQueuedConnections; });
    jobs_.push_back(std::move(fn));
    ready_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    ready_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ready_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      space_.notify_one();
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<std::function<void()>> jobs_;
  bool shutdown_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& host, int port,
                                                                  std::shared_ptr<prometheus::Registry> registry) {
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint);
  auto http = std::make_unique<httplib::Server>();
  http->new_task_queue = [] { return new BoundedConnectionQueue; };
  http->set_payload_max_length(kMaxRequestBodyBytes);
  http->set_read_timeout(kReadTimeoutSeconds, 0);
  http->set_write_timeout(kWriteTimeoutSeconds, 0);
  // HEAD /metrics is answered by the GET handler without the body.
  http->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus::TextSerializer().Serialize(registry->Collect()), "text/plain; version=0.0.4; charset=utf-8");
  });
  const auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
  };
  http->Post("/metrics", not_allowed);
  http->Put("/metrics", not_allowed);
  http->Patch("/metrics", not_allowed);
  http->Delete("/metrics", not_allowed);
  http->Options("/metrics", not_allowed);

  const int bound = port == 0 ? http->bind_to_any_port(host) : (http->bind_to_port(host, port) ? port : -1);
  if (bound <= 0)
    return Status(StatusCode::kUnavailable, "cannot serve metrics on " + host + ":" + std::to_string(port));
  endpoint->port_ = bound;
  endpoint->http_ = std::move(http);
  std::promise<void> listening_ended;
  endpoint->listening_ended_ = listening_ended.get_future();
  endpoint->listener_ = std::thread([server = endpoint->http_.get(), ended = std::move(listening_ended)]() mutable {
    server->listen_after_bind();
    ended.set_value();
  });
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() {
  // cpp-httplib's stop() does nothing until the listening thread has marked the server running,
  // which it may not have yet when start-up fails right after binding: stop until it has ended.
  do {
    http_->stop();
  } while (listening_ended_.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready);
  listener_.join();
}

}  // namespace bpt::server
