// A generic HTTP/1.1 server (keep-alive, pipelining, chunked streaming, TLS and mTLS) over
// Boost.Beast, for the OpenAI-compatible API. It knows nothing of that API: a Handler sees each
// request's head before its body is read, then the whole body, and answers through an Exchange
// from any thread. The transport's own refusals (malformed, too large, too slow) take their
// bodies from the Handler, so every error has the API's shape.
//
// Beast and Asio stay behind HttpServer's pointer to its implementation: a file including this
// header compiles without them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "status.h"

namespace bpt::server::http {

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;                       // 0: any free port
  std::string tls_cert, tls_key, tls_client_ca;  // PEM paths; cert+key: TLS; client_ca: mTLS required
  uint64_t max_body_bytes = 256ull << 20;
  int io_threads = 2;
  // A first request's head (and TLS handshake) counts from the accept, a next one's from its first byte.
  std::chrono::milliseconds header_timeout{10000};  // the whole head must arrive in this (slowloris)
  std::chrono::milliseconds body_timeout{300000};   // the whole body
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive wait for the next request; also the
                                                    // longest a peer may take none of a write
  size_t max_header_bytes = 16 * 1024;
  size_t max_connections = 4096;         // past it, new connections are closed at once
};

struct RequestHead {
  std::string method;   // "GET", "POST", ...
  std::string path;     // the target without '?query'
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::optional<uint64_t> content_length;  // none when chunked or absent
  bool has_body = false;                   // content_length > 0 or chunked
  std::vector<std::string_view> Headers(std::string_view lower_name) const;  // every value
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// One request's reply. Thread-safe: the engine worker's thread calls it. After the first of
// Respond or EndStream, further calls do nothing. Writes are queued and sent in order. Write and
// EndStream before StartStream do nothing; once the connection is gone every call does nothing,
// also after the server was destroyed (an Exchange may outlive it).
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual void Respond(Response response) = 0;        // a whole response (Content-Length)
  virtual void StartStream(int status, std::string content_type,
                           std::vector<std::pair<std::string, std::string>> headers = {}) = 0;  // chunked
  virtual void Write(std::string data) = 0;            // one chunk of the stream (flushed at once); "" sends nothing
  virtual void EndStream() = 0;                        // the last chunk; the exchange ends
  // Runs once, on a transport thread, when the peer disconnects (or a write fails, or the server
  // stops) before the exchange ended, also while nothing has been sent yet: a client gone during
  // a long prefill is seen without writing. If already closed, runs at once.
  // Seeing a disconnect without writing has two costs: a client that only shuts down its sending
  // side after its request reads as gone (its exchange closed); and when bytes follow the body
  // (a pipelined next request, a stray CRLF) the peer is not watched, so its going is seen only
  // once a write fails.
  virtual void SetOnClose(std::function<void()> on_close) = 0;
  virtual bool closed() const = 0;  // the connection went before the exchange ended (OnClose has run)
};

// A call that throws is a Handler's bug: the request gets a 500 that the transport makes itself
// (in the API's error shape) and the connection closes; the process goes on.
class Handler {
 public:
  virtual ~Handler() = default;
  // With the head alone, before one byte of the body is read (API key, route, method,
  // Content-Length against the limit, readiness): a Response refuses the request, its body is
  // never read, and the connection closes after the response when a body was announced.
  virtual std::optional<Response> OnHead(const RequestHead& head) = 0;
  // The whole body (at most max_body_bytes). May answer at once or later from any thread.
  // Runs on an io thread: must not block on the engine.
  virtual void OnRequest(const RequestHead& head, std::string body, std::shared_ptr<Exchange> exchange) = 0;
  // The transport's own refusals, so every error body has the API's shape: 400 malformed HTTP,
  // 408 head/body timeout, 413 body over the limit (chunked bodies counted as read; also a
  // chunk header or trailer too large to hold), 431 head too large. head is null when the
  // request line or headers could not be parsed.
  virtual Response TransportError(const RequestHead* head, int status, const std::string& message) = 0;
};

class HttpServer {
 public:
  // Binds (port() then tells which) and starts the io threads; `handler` outlives the server.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options, Handler* handler);
  ~HttpServer();  // stops accepting, closes every connection (their OnClose run), joins
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  int port() const;
  size_t open_connections() const;
  // Requests handed to the Handler whose response is not yet sent whole (nor its client gone).
  size_t unsent_responses() const;

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bpt::server::http
