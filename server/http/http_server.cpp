#include "http_server.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <thread>

#include "connection.h"
#include "tls_context.h"

namespace bpt::server::http {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

// After a failed accept (out of file descriptors, say): the pause before the next, so the
// acceptor does not spin on an error that only closing connections ends.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

Status CheckOptions(const HttpServerOptions& o) {
  if (o.port < 0 || o.port > 65535) return InvalidArgument("port " + std::to_string(o.port) + " is not in 0..65535");
  if (o.io_threads < 1) return InvalidArgument("io_threads must be at least 1, not " + std::to_string(o.io_threads));
  if (o.max_connections < 1) return InvalidArgument("max_connections must be at least 1");
  if (o.max_header_bytes < 1) return InvalidArgument("max_header_bytes must be at least 1");
  if (o.header_timeout.count() <= 0) return InvalidArgument("header_timeout must be positive");
  if (o.body_timeout.count() <= 0) return InvalidArgument("body_timeout must be positive");
  if (o.idle_timeout.count() <= 0) return InvalidArgument("idle_timeout must be positive");
  return OkStatus();
}

}  // namespace

std::vector<std::string_view> RequestHead::Headers(std::string_view lower_name) const {
  std::vector<std::string_view> values;
  for (const auto& [name, value] : headers)
    if (name == lower_name) values.emplace_back(value);
  return values;
}

class HttpServer::Impl {
 public:
  Impl(const HttpServerOptions& options, Handler* handler, std::unique_ptr<net::ssl::context> tls)
      : io_(options.io_threads),
        context_{options, handler, std::move(tls), ConnectionRegistry(options.max_connections)},
        acceptor_(net::make_strand(io_)),
        accept_retry_(acceptor_.get_executor()),
        work_(net::make_work_guard(io_)) {}

  ~Impl() {
    for (const auto& connection : context_.connections.StopAccepting()) connection->Stop();
    net::post(acceptor_.get_executor(), [this] {
      error_code ignored;
      acceptor_.close(ignored);
      accept_retry_.cancel();
    });
    // The io threads return once every connection has closed and its last handler has run.
    work_.reset();
    for (std::thread& thread : threads_) thread.join();
  }

  Status Listen() {
    const HttpServerOptions& o = context_.options;
    const std::string where = o.host + ":" + std::to_string(o.port);
    error_code ec;
    tcp::resolver resolver(io_);
    const auto endpoints = resolver.resolve(o.host, std::to_string(o.port), tcp::resolver::passive, ec);
    if (ec || endpoints.empty())
      return Status(StatusCode::kUnavailable, "cannot resolve the HTTP host '" + o.host + "': " + ec.message());
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    if (acceptor_.open(endpoint.protocol(), ec); !ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (!ec) port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return Status(StatusCode::kUnavailable, "cannot listen for HTTP on " + where + ": " + ec.message());
    return OkStatus();
  }

  void Run() {
    net::post(acceptor_.get_executor(), [this] { Accept(); });
    for (int i = 0; i < context_.options.io_threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  int port() const { return port_; }
  size_t open_connections() const { return context_.connections.size(); }

 private:
  // On the acceptor's strand.
  void Accept() {
    acceptor_.async_accept(net::make_strand(io_), [this](error_code ec, tcp::socket socket) {
      if (!acceptor_.is_open()) return;
      if (ec) {
        accept_retry_.expires_after(kAcceptRetryDelay);
        accept_retry_.async_wait([this](error_code ec) {
          if (!ec && acceptor_.is_open()) Accept();
        });
        return;
      }
      std::shared_ptr<Connection> connection = MakeConnection(std::move(socket), context_);
      // Refused (full, or stopping): dropping it closes the socket.
      if (context_.connections.Add(connection)) connection->Start();
      Accept();
    });
  }

  net::io_context io_;
  ConnectionContext context_;
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options, Handler* handler) {
  BPT_RETURN_IF_ERROR(CheckOptions(options));
  BPT_ASSIGN_OR_RETURN(auto tls, MakeTlsContext(options));
  auto impl = std::make_unique<Impl>(options, handler, std::move(tls));
  BPT_RETURN_IF_ERROR(impl->Listen());
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

int HttpServer::port() const { return impl_->port(); }
size_t HttpServer::open_connections() const { return impl_->open_connections(); }

}  // namespace bpt::server::http
