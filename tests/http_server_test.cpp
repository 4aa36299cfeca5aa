// The HTTP/1.1 transport (server/http) against raw socket clients: round trips, keep-alive and
// pipelining, every limit and timeout, refusals that never read the body, streaming one chunk at
// a time, disconnects seen while a response is pending, a Handler that throws, keep-alive
// probes, TLS and mTLS (with session resumption), and the connection limit.
// Timeouts are only waited for, never raced: a test waits for the event (a close, a callback)
// with a generous bound that only guards against a hang.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "http_server.h"
#include "proc_status.h"
#include "temp_dir.h"
#include "test_certificates.h"

namespace bpt::server::http {
namespace {

constexpr std::chrono::seconds kHangGuard{60};

class Event {
 public:
  void Set() {
    std::lock_guard<std::mutex> lock(mutex_);
    set_ = true;
    cv_.notify_all();
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, kHangGuard, [&] { return set_; });
  }
  bool is_set() {
    std::lock_guard<std::mutex> lock(mutex_);
    return set_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;
};

struct TransportErrorCall {
  int status;
  bool had_head;
  std::string message;
};

// /echo answers at once with the method, path and body; /refuse is refused from its head; any
// other path's exchange is handed to the test, which answers it from its own thread as the
// engine worker would.
class TestHandler : public Handler {
 public:
  std::optional<Response> OnHead(const RequestHead& head) override {
    std::lock_guard<std::mutex> lock(mutex_);
    heads_.push_back(head);
    if (head.path == "/refuse") return Response{401, "text/plain", "refused", {}};
    return std::nullopt;
  }

  void OnRequest(const RequestHead& head, std::string body, std::shared_ptr<Exchange> exchange) override {
    ++requests;
    if (head.path == "/echo") {
      exchange->Respond({200, "text/plain", head.method + " " + head.path + " " + body, {{"X-Test", "yes"}}});
      return;
    }
    exchange->SetOnClose([this] {
      ++on_close_calls;
      on_close.Set();
    });
    std::lock_guard<std::mutex> lock(mutex_);
    held_.push_back(std::move(exchange));
    held_cv_.notify_all();
  }

  Response TransportError(const RequestHead* head, int status, const std::string& message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    transport_errors_.push_back({status, head != nullptr, message});
    return {status, "text/plain", "transport error " + std::to_string(status), {}};
  }

  // The next exchange handed to the test (null past the hang guard).
  std::shared_ptr<Exchange> NextHeld() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!held_cv_.wait_for(lock, kHangGuard, [&] { return !held_.empty(); })) return nullptr;
    auto exchange = held_.front();
    held_.pop_front();
    return exchange;
  }

  std::vector<RequestHead> heads() {
    std::lock_guard<std::mutex> lock(mutex_);
    return heads_;
  }
  std::vector<TransportErrorCall> transport_errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    return transport_errors_;
  }

  std::atomic<int> requests{0};
  std::atomic<int> on_close_calls{0};
  Event on_close;

 private:
  std::mutex mutex_;
  std::condition_variable held_cv_;
  std::deque<std::shared_ptr<Exchange>> held_;
  std::vector<RequestHead> heads_;
  std::vector<TransportErrorCall> transport_errors_;
};

struct ParsedResponse {
  std::string status_line;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& lower_name) const {
    for (const auto& [name, value] : headers)
      if (name == lower_name) return value;
    return "";
  }
};

struct TlsClientSetup {
  std::string ca;
  std::string cert, key;  // empty: no client certificate
  int max_version = 0;              // e.g. TLS1_2_VERSION; 0: the library's newest
  SSL_SESSION* resume = nullptr;    // a session to resume (not owned)
};

struct SessionFree {
  void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
using UniqueSession = std::unique_ptr<SSL_SESSION, SessionFree>;

// A blocking client on a raw socket (optionally TLS through OpenSSL), reading responses byte by
// byte from what the server sent; every read gives up after the hang guard. Without TLS, one
// thread may Send while another reads: they share only the socket.
class Client {
 public:
  // receive_buffer_bytes: a fixed receive buffer (0: the kernel's, which grows as the client reads).
  explicit Client(int port, const TlsClientSetup* tls = nullptr, int receive_buffer_bytes = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval guard{kHangGuard.count(), 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
    if (receive_buffer_bytes > 0)
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    if (connected_ && tls != nullptr) connected_ = StartTls(*tls);
  }
  ~Client() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ssl_context_ != nullptr) SSL_CTX_free(ssl_context_);
    if (fd_ >= 0) close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  int local_port() const {
    sockaddr_in address{};
    socklen_t size = sizeof address;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    return ntohs(address.sin_port);
  }

  bool resumed_session() const { return ssl_ != nullptr && SSL_session_reused(ssl_) == 1; }

  // Ends TLS with close_notify (a connection dropped without it leaves its session unresumable)
  // and returns the session, for a next connection to resume.
  UniqueSession CloseTls() {
    UniqueSession session(SSL_get1_session(ssl_));
    SSL_shutdown(ssl_);
    return session;
  }

  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ssl_ != nullptr ? SSL_write(ssl_, bytes.data() + sent, static_cast<int>(bytes.size() - sent))
                                        : send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Everything up to and including the blank line after the header fields.
  std::optional<std::string> ReadHead() {
    while (buffer_.find("\r\n\r\n") == std::string::npos)
      if (!Fill()) return std::nullopt;
    const size_t end = buffer_.find("\r\n\r\n") + 4;
    std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end);
    return head;
  }

  // One whole response, its body by Content-Length or chunked coding (all chunks joined).
  std::optional<ParsedResponse> ReadResponse() {
    auto response = ReadResponseHead();
    if (!response) return std::nullopt;
    if (response->Header("transfer-encoding") == "chunked") {
      while (true) {
        auto chunk = ReadChunk();
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        response->body += *chunk;
      }
    } else {
      const std::string length = response->Header("content-length");
      if (!length.empty() && !ReadBytes(std::stoul(length), &response->body)) return std::nullopt;
    }
    return response;
  }

  std::optional<ParsedResponse> ReadResponseHead() {
    auto head = ReadHead();
    if (!head) return std::nullopt;
    ParsedResponse response;
    size_t line_end = head->find("\r\n");
    response.status_line = head->substr(0, line_end);
    if (response.status_line.rfind("HTTP/1.", 0) != 0 || response.status_line.size() < 12) return std::nullopt;
    response.status = std::stoi(response.status_line.substr(9, 3));
    size_t start = line_end + 2;
    while ((line_end = head->find("\r\n", start)) != start) {
      const std::string line = head->substr(start, line_end - start);
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const size_t value = line.find_first_not_of(' ', colon + 1);
      response.headers.emplace_back(name, value == std::string::npos ? "" : line.substr(value));
      start = line_end + 2;
    }
    return response;
  }

  // One chunk of a chunked body: its data, or "" for the last chunk (no trailer fields).
  std::optional<std::string> ReadChunk() {
    while (buffer_.find("\r\n") == std::string::npos)
      if (!Fill()) return std::nullopt;
    const size_t line_end = buffer_.find("\r\n");
    const size_t size = std::stoul(buffer_.substr(0, line_end), nullptr, 16);
    buffer_.erase(0, line_end + 2);
    std::string data;
    std::string crlf;
    if (!ReadBytes(size, &data) || !ReadBytes(2, &crlf) || crlf != "\r\n") return std::nullopt;
    return data;
  }

  // Whether the server closed the connection (EOF or a reset) with nothing more sent.
  bool ClosedByServer() {
    if (!buffer_.empty()) return false;
    char byte;
    return ReadSome(&byte, 1) <= 0 && !timed_out_;
  }

  // Whether nothing is left unread: what a peer closing at once would have sent is here.
  bool nothing_buffered() const { return buffer_.empty(); }

  // Appends the next `size` bytes (a body after its head was read).
  bool ReadBytes(size_t size, std::string* out) {
    while (buffer_.size() < size)
      if (!Fill()) return false;
    out->append(buffer_, 0, size);
    buffer_.erase(0, size);
    return true;
  }

 private:
  bool StartTls(const TlsClientSetup& setup) {
    ssl_context_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ssl_context_, SSL_VERIFY_PEER, nullptr);
    if (setup.max_version != 0) SSL_CTX_set_max_proto_version(ssl_context_, setup.max_version);
    if (SSL_CTX_load_verify_locations(ssl_context_, setup.ca.c_str(), nullptr) != 1) return false;
    if (!setup.cert.empty() &&
        (SSL_CTX_use_certificate_file(ssl_context_, setup.cert.c_str(), SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_use_PrivateKey_file(ssl_context_, setup.key.c_str(), SSL_FILETYPE_PEM) != 1))
      return false;
    ssl_ = SSL_new(ssl_context_);
    SSL_set_fd(ssl_, fd_);
    if (setup.resume != nullptr) SSL_set_session(ssl_, setup.resume);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    SSL_set1_host(ssl_, "localhost");
    const bool ok = SSL_connect(ssl_) == 1;
    ERR_clear_error();
    return ok;
  }

  ssize_t ReadSome(char* out, size_t size) {
    const ssize_t n = ssl_ != nullptr ? SSL_read(ssl_, out, static_cast<int>(size)) : recv(fd_, out, size, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) timed_out_ = true;
    ERR_clear_error();
    return n;
  }

  bool Fill() {
    char chunk[16384];
    const ssize_t n = ReadSome(chunk, sizeof chunk);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool timed_out_ = false;
  SSL_CTX* ssl_context_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;  // read and not yet consumed
};

HttpServerOptions LoopbackOptions() {
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  return options;
}

std::unique_ptr<HttpServer> StartServer(const HttpServerOptions& options, Handler* handler) {
  auto server = HttpServer::Start(options, handler);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

// Polls what only the server's own threads change; the bound only guards against a hang.
template <class Predicate>
bool Eventually(Predicate predicate) {
  const auto give_up = std::chrono::steady_clock::now() + kHangGuard;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

const std::string kGetEcho = "GET /echo?x=1 HTTP/1.1\r\nHost: test\r\nX-Mixed-Case: Value\r\n\r\n";

TEST(HttpServer, GetRoundTrip) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  EXPECT_GT(server->port(), 0);
  Client client(server->port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send(kGetEcho));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response->body, "GET /echo ");
  EXPECT_EQ(response->Header("content-type"), "text/plain");
  EXPECT_EQ(response->Header("x-test"), "yes");
  EXPECT_EQ(response->Header("connection"), "");
  EXPECT_NE(response->Header("date"), "");

  const auto heads = handler.heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_EQ(heads[0].method, "GET");
  EXPECT_EQ(heads[0].path, "/echo");
  EXPECT_FALSE(heads[0].has_body);
  EXPECT_FALSE(heads[0].content_length.has_value());
  ASSERT_EQ(heads[0].Headers("x-mixed-case").size(), 1u);
  EXPECT_EQ(heads[0].Headers("x-mixed-case")[0], "Value");
  EXPECT_EQ(heads[0].headers[0].first, "host");
}

TEST(HttpServer, KeepAliveServesTwoRequestsOnOneConnection) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send(kGetEcho));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello"));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "POST /echo hello");
  EXPECT_EQ(server->open_connections(), 1u);
  EXPECT_EQ(handler.requests, 2);
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none"
                          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
                          "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
  for (const std::string expected : {"POST /echo one", "POST /echo two", "GET /echo "}) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, expected);
  }
}

TEST(HttpServer, ExpectContinueIsAnsweredOnlyAfterTheHeadIsAccepted) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = client.ReadHead();
  ASSERT_TRUE(interim);
  EXPECT_EQ(*interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.Send("body"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "POST /echo body");

  Client refused(server->port());
  ASSERT_TRUE(refused.Send("POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  auto refusal = refused.ReadResponse();
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, 401);
}

// The refusal comes from the head alone: the 300 MB body is never sent, so an answer proves the
// server did not wait for it, and the connection closes so the body is never taken for a request.
TEST(HttpServer, RefusedHeadIsAnsweredWithoutReadingTheBody) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 300000000\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 401);
  EXPECT_EQ(response->body, "refused");
  EXPECT_EQ(response->Header("connection"), "close");
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_EQ(handler.requests, 0);
  const auto heads = handler.heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_EQ(heads[0].content_length, 300000000u);
  EXPECT_TRUE(heads[0].has_body);
}

TEST(HttpServer, RefusedHeadWithoutBodyKeepsTheConnection) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET /refuse HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto refusal = client.ReadResponse();
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, 401);
  EXPECT_EQ(refusal->Header("connection"), "");
  ASSERT_TRUE(client.Send(kGetEcho));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(HttpServer, BodyOverTheLimitByContentLengthIs413) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.max_body_bytes = 1000;
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->body, "transport error 413");
  EXPECT_EQ(response->Header("connection"), "close");
  EXPECT_TRUE(client.ClosedByServer());
  const auto errors = handler.transport_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].had_head);
  EXPECT_NE(errors[0].message.find("1001"), std::string::npos) << errors[0].message;
  EXPECT_EQ(handler.requests, 0);
}

TEST(HttpServer, ChunkedBodyOverTheLimitIs413) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.max_body_bytes = 1000;
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  const std::string chunk(600, 'x');
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "258\r\n" + chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->Header("connection"), "close");
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_EQ(handler.requests, 0);

  Client within(server->port());
  ASSERT_TRUE(within.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "258\r\n" + chunk + "\r\n0\r\n\r\n"));
  auto accepted = within.ReadResponse();
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->body, "POST /echo " + chunk);
}

// Beast bounds neither a chunk's extensions nor a chunked body's trailer; the connection's read
// buffer must. The client sends far more of one than that bound, from one small buffer so that
// this process's own memory stays flat: the refusal arriving at all shows the server stopped
// reading it in, and the process's resident memory that it never held what was sent.
void ExpectEndlessChunkedPartRefused(const std::string& part_start) {
  constexpr size_t kSentBytes = 32 << 20;
  constexpr int64_t kMostGrowth = 16 << 20;  // well under what holding kSentBytes would take
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  const int64_t resident_before = bpt::testing::ProcStatusBytes("self", "VmRSS");
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + part_start));
  // Once refused the server reads on only to throw away, until it gives up on the peer: a send
  // may then fail, and the sender just stops.
  std::thread sender([&] {
    const std::string filler(64 << 10, 'x');
    for (size_t sent = 0; sent < kSentBytes && client.Send(filler); sent += filler.size()) {
    }
  });
  auto response = client.ReadResponse();
  const bool closed = response && client.ClosedByServer();
  sender.join();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->Header("connection"), "close");
  EXPECT_TRUE(closed);
  EXPECT_LT(bpt::testing::ProcStatusBytes("self", "VmRSS") - resident_before, kMostGrowth);
  const auto errors = handler.transport_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].had_head);
  EXPECT_EQ(handler.requests, 0);
}

TEST(HttpServer, EndlessChunkExtensionIs413) { ExpectEndlessChunkedPartRefused("1;x="); }

TEST(HttpServer, EndlessChunkedTrailerIs413) { ExpectEndlessChunkedPartRefused("1\r\na\r\n0\r\nX-Trailer: "); }

TEST(HttpServer, HeadOverTheLimitIs431) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.max_header_bytes = 1024;
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(4096, 'b') + "\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(response->Header("connection"), "close");
  EXPECT_TRUE(client.ClosedByServer());
  const auto errors = handler.transport_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_FALSE(errors[0].had_head);
  EXPECT_TRUE(handler.heads().empty());
}

TEST(HttpServer, MalformedRequestsAre400) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  for (const std::string& garbage :
       {std::string("\x01\x02 garbage\r\n\r\n"), std::string("GET /echo HTTP/1.1\r\nHost t\r\n\r\n"),
        std::string("POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        std::string("POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabcd"),
        std::string("GET /echo HTTP/2.0\r\n\r\n")}) {
    Client client(server->port());
    ASSERT_TRUE(client.Send(garbage));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << garbage;
    EXPECT_EQ(response->status, 400) << garbage;
    EXPECT_EQ(response->Header("connection"), "close");
    EXPECT_TRUE(client.ClosedByServer()) << garbage;
  }
  EXPECT_EQ(handler.requests, 0);
  const auto errors = handler.transport_errors();
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_FALSE(errors[0].had_head);
  EXPECT_TRUE(errors[3].had_head);  // the Transfer-Encoding is judged from a parsed head
}

// One io thread: if the slow client's partial head held it, the other client could not be
// served at all. The slow one is answered 408 and closed once header_timeout has passed.
TEST(HttpServer, SlowHeadIsCutAtTheDeadlineWithoutBlockingOthers) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.io_threads = 1;
  // The served client's head must also arrive within this of its accept (one write on loopback):
  // a margin no scheduling stall reaches, while the slow client still meets the deadline.
  options.header_timeout = std::chrono::milliseconds(2000);
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  Client slow(server->port());
  ASSERT_TRUE(slow.Send("GET /echo HTTP/1.1\r\nHost: t\r\nX-Drip: a"));

  Client other(server->port());
  ASSERT_TRUE(other.Send(kGetEcho));
  auto served = other.ReadResponse();
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200);

  auto timed_out = slow.ReadResponse();
  ASSERT_TRUE(timed_out);
  EXPECT_EQ(timed_out->status, 408);
  EXPECT_EQ(timed_out->Header("connection"), "close");
  EXPECT_TRUE(slow.ClosedByServer());
  const auto errors = handler.transport_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_FALSE(errors[0].had_head);
}

TEST(HttpServer, SlowBodyIs408) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.body_timeout = std::chrono::milliseconds(300);
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 408);
  EXPECT_TRUE(client.ClosedByServer());
  const auto errors = handler.transport_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].had_head);
}

TEST(HttpServer, IdleKeepAliveConnectionIsClosed) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.idle_timeout = std::chrono::milliseconds(300);
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send(kGetEcho));
  ASSERT_TRUE(client.ReadResponse());
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_TRUE(Eventually([&] { return server->open_connections() == 0; }));
  EXPECT_TRUE(handler.transport_errors().empty());
}

TEST(HttpServer, Http10ClosesUnlessAskedToKeepAlive) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client kept(server->port());
  ASSERT_TRUE(kept.Send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto first = kept.ReadResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status_line, "HTTP/1.0 200 OK");
  EXPECT_EQ(first->Header("connection"), "keep-alive");
  ASSERT_TRUE(kept.Send("GET /echo HTTP/1.0\r\n\r\n"));
  auto second = kept.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->Header("connection"), "close");
  EXPECT_TRUE(kept.ClosedByServer());
}

// Chunk 2 is written only after the client has read chunk 1: each Write leaves at once as its
// own chunk, not held back for the next.
TEST(HttpServer, StreamChunksArriveInOrderOneAtATime) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
  auto exchange = handler.NextHeld();
  ASSERT_NE(exchange, nullptr);
  exchange->StartStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
  auto head = client.ReadResponseHead();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-type"), "text/event-stream");
  EXPECT_EQ(head->Header("transfer-encoding"), "chunked");
  EXPECT_EQ(head->Header("cache-control"), "no-cache");
  for (int i = 1; i <= 3; ++i) {
    const std::string event = "data: " + std::to_string(i) + "\n\n";
    exchange->Write(event);
    auto chunk = client.ReadChunk();
    ASSERT_TRUE(chunk);
    EXPECT_EQ(*chunk, event);
    EXPECT_TRUE(client.nothing_buffered());
  }
  exchange->Write("");  // nothing: an empty chunk would end the stream
  exchange->EndStream();
  exchange->Write("after the end");
  auto last = client.ReadChunk();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, "");

  ASSERT_TRUE(client.Send(kGetEcho));  // the connection goes on
  auto next = client.ReadResponse();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "GET /echo ");
  EXPECT_FALSE(exchange->closed());
  EXPECT_EQ(handler.on_close_calls, 0);
}

TEST(HttpServer, ClientGoneBeforeTheResponseRunsOnClose) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  std::shared_ptr<Exchange> exchange;
  {
    Client client(server->port());
    ASSERT_TRUE(client.Send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
    exchange = handler.NextHeld();
    ASSERT_NE(exchange, nullptr);
    EXPECT_FALSE(exchange->closed());
  }
  ASSERT_TRUE(handler.on_close.Wait());
  EXPECT_TRUE(exchange->closed());
  exchange->Respond({200, "text/plain", "too late", {}});  // dropped
  Event ran_at_once;
  exchange->SetOnClose([&] { ran_at_once.Set(); });
  EXPECT_TRUE(ran_at_once.is_set());
  EXPECT_TRUE(Eventually([&] { return server->open_connections() == 0; }));
  EXPECT_EQ(handler.on_close_calls, 1);
}

TEST(HttpServer, ClientGoneWhileStreamingRunsOnClose) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  std::shared_ptr<Exchange> exchange;
  {
    Client client(server->port());
    ASSERT_TRUE(client.Send("POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
    exchange = handler.NextHeld();
    ASSERT_NE(exchange, nullptr);
    exchange->StartStream(200, "text/event-stream");
    exchange->Write("data: 1\n\n");
    ASSERT_TRUE(client.ReadResponseHead());
    ASSERT_TRUE(client.ReadChunk());
  }
  ASSERT_TRUE(handler.on_close.Wait());
  EXPECT_TRUE(exchange->closed());
  exchange->Write("data: 2\n\n");  // dropped
  EXPECT_EQ(handler.on_close_calls, 1);
}

// A next request that arrives while a response is pending ends the watch for the peer going:
// it waits, unparsed, and is answered after the pending response.
TEST(HttpServer, RequestArrivingWhileAResponseIsPendingIsAnsweredAfterIt) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
  auto exchange = handler.NextHeld();
  ASSERT_NE(exchange, nullptr);
  ASSERT_TRUE(client.Send(kGetEcho));
  exchange->Respond({200, "text/plain", "held", {}});
  auto held = client.ReadResponse();
  ASSERT_TRUE(held);
  EXPECT_EQ(held->body, "held");
  auto next = client.ReadResponse();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "GET /echo ");
  EXPECT_EQ(handler.on_close_calls, 0);
}

// idle_timeout bounds how long the peer takes none of a write, not how long a whole response
// takes: a body that needs many times idle_timeout to drain at the client's pace goes out whole.
// The client's receive buffer is fixed (not grown as it reads), so that what the kernels hold
// ahead of the reader stays a few MB and the server's writes keep waiting on it.
TEST(HttpServer, SlowButSteadyReaderGetsALargeResponseWhole) {
  constexpr std::chrono::milliseconds kIdleTimeout{1000};
  constexpr size_t kBodyBytes = 32 << 20;
  constexpr size_t kReadBytes = 64 << 10;
  // The reader's pace: kBodyBytes take over 2 s (so more than idle_timeout), while the server's
  // writes complete about every 100 ms.
  constexpr std::chrono::milliseconds kPause{4};
  TestHandler handler;
  auto options = LoopbackOptions();
  options.idle_timeout = kIdleTimeout;
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port(), nullptr, 256 << 10);
  ASSERT_TRUE(client.Send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
  auto exchange = handler.NextHeld();
  ASSERT_NE(exchange, nullptr);
  std::string body(kBodyBytes, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  exchange->Respond({200, "application/octet-stream", body, {}});
  auto head = client.ReadResponseHead();
  ASSERT_TRUE(head);
  ASSERT_EQ(head->Header("content-length"), std::to_string(kBodyBytes));
  const auto started = std::chrono::steady_clock::now();
  std::string received;
  while (received.size() < kBodyBytes) {
    ASSERT_TRUE(client.ReadBytes(std::min(kReadBytes, kBodyBytes - received.size()), &received))
        << "cut after " << received.size() << " bytes";
    std::this_thread::sleep_for(kPause);
  }
  EXPECT_TRUE(received == body);
  // Else this test would not have shown that a response outlasting idle_timeout is kept.
  EXPECT_GT(std::chrono::steady_clock::now() - started, kIdleTimeout);
  EXPECT_EQ(handler.on_close_calls, 0);
  ASSERT_TRUE(client.Send(kGetEcho));  // the connection goes on
  auto next = client.ReadResponse();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "GET /echo ");
}

// A client that takes none of a response for idle_timeout is gone: the connection closes, and
// with it the exchange (the response was never sent whole).
TEST(HttpServer, ReaderTakingNothingIsClosedAfterTheIdleTimeout) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.idle_timeout = std::chrono::milliseconds(300);
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port(), nullptr, 64 << 10);
  ASSERT_TRUE(client.Send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
  auto exchange = handler.NextHeld();
  ASSERT_NE(exchange, nullptr);
  // Far more than the kernel's send and receive buffers between the two hold.
  exchange->Respond({200, "application/octet-stream", std::string(32 << 20, 'x'), {}});
  ASSERT_TRUE(handler.on_close.Wait());
  EXPECT_TRUE(exchange->closed());
  EXPECT_TRUE(Eventually([&] { return server->open_connections() == 0; }));
  EXPECT_EQ(server->unsent_responses(), 0u);
}

// A Handler that throws where each of its calls would (a JSON library's exception, say).
class ThrowingHandler : public TestHandler {
 public:
  std::optional<Response> OnHead(const RequestHead& head) override {
    if (head.path == "/throw-in-head") throw std::runtime_error("OnHead failed");
    return TestHandler::OnHead(head);
  }
  void OnRequest(const RequestHead& head, std::string body, std::shared_ptr<Exchange> exchange) override {
    if (head.path == "/throw-in-request") {
      exchange->SetOnClose([this] { on_close.Set(); });
      exchange->Respond({200, "text/plain", "answered before the throw", {}});
      throw 42;  // not even a std::exception
    }
    TestHandler::OnRequest(head, std::move(body), std::move(exchange));
  }
  Response TransportError(const RequestHead*, int, const std::string&) override {
    throw std::logic_error("TransportError failed");
  }
};

TEST(HttpServer, HandlerThatThrowsGets500AndTheServerGoesOn) {
  ThrowingHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  for (const std::string request :
       {"GET /throw-in-head HTTP/1.1\r\nHost: t\r\n\r\n",
        "POST /throw-in-request HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}",
        "GET /echo HTTP/1.1\r\nHost t\r\n\r\n"}) {  // malformed: TransportError throws
    Client client(server->port());
    ASSERT_TRUE(client.Send(request));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << request;
    EXPECT_EQ(response->status, 500) << request;
    EXPECT_EQ(response->Header("content-type"), "application/json");
    EXPECT_EQ(response->body,
              R"({"error":{"message":"internal error","type":"server_error","param":null,"code":null}})");
    EXPECT_EQ(response->Header("connection"), "close");
    EXPECT_TRUE(client.ClosedByServer()) << request;
  }
  // The exchange handed over before the throw is closed, its own response never sent.
  EXPECT_TRUE(handler.on_close.Wait());
  EXPECT_EQ(server->unsent_responses(), 0u);
  Client served(server->port());
  ASSERT_TRUE(served.Send(kGetEcho));
  auto response = served.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// The kernel's view of the server's end of a loopback connection, from /proc/net/tcp: its timer
// ("tr" 2 is the keep-alive timer) and when that fires, in 1/100 s. None when not listed.
struct TcpTimer {
  int kind = 0;
  long expires_centiseconds = 0;
};
std::optional<TcpTimer> SocketTimer(int local_port, int remote_port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // the column names
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer;
    fields >> slot >> local >> remote >> state >> queues >> timer;
    const auto port = [](const std::string& address) {
      return std::stoi(address.substr(address.find(':') + 1), nullptr, 16);
    };
    if (port(local) != local_port || port(remote) != remote_port) continue;
    return TcpTimer{std::stoi(timer.substr(0, 2), nullptr, 16), std::stol(timer.substr(3), nullptr, 16)};
  }
  return std::nullopt;
}

// A client gone without a FIN or a reset is found by keep-alive probes, the first after 60 s
// idle (the system's default would be two hours).
TEST(HttpServer, AcceptedConnectionsProbeAnIdlePeer) {
  if (!std::filesystem::exists("/proc/net/tcp")) GTEST_SKIP() << "no /proc/net/tcp";
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send(kGetEcho));
  ASSERT_TRUE(client.ReadResponse());  // the server's end is set up by now
  // The retransmission timer shows instead until the response's last byte is acknowledged.
  std::optional<TcpTimer> timer;
  ASSERT_TRUE(Eventually([&] {
    timer = SocketTimer(server->port(), client.local_port());
    return timer && timer->kind == 2;
  }));
  EXPECT_GT(timer->expires_centiseconds, 0);
  EXPECT_LE(timer->expires_centiseconds, 60 * 100);
}

TEST(HttpServer, HeadRequestGetsTheHeadAlone) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto head = client.ReadResponseHead();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-length"), std::to_string(std::string("HEAD /echo ").size()));
  ASSERT_TRUE(client.Send(kGetEcho));  // had a body been sent, this would read it instead
  auto next = client.ReadResponse();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "GET /echo ");
}

// The engine worker may still hold exchanges when the server goes: they are closed (OnClose
// runs) and their later calls, from another thread, do nothing.
TEST(HttpServer, DestructionClosesOpenExchanges) {
  TestHandler handler;
  auto server = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
  auto exchange = handler.NextHeld();
  ASSERT_NE(exchange, nullptr);
  exchange->StartStream(200, "text/event-stream");
  std::thread worker([&] {
    while (!exchange->closed()) exchange->Write("data: racing the shutdown\n\n");
    exchange->Write("data: late\n\n");
    exchange->EndStream();
  });
  server.reset();
  EXPECT_TRUE(handler.on_close.is_set());
  EXPECT_TRUE(exchange->closed());
  worker.join();
  EXPECT_EQ(handler.on_close_calls, 1);
}

TEST(HttpServer, ConnectionsPastTheLimitAreClosedAtOnce) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.max_connections = 1;
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  auto first = std::make_unique<Client>(server->port());
  ASSERT_TRUE(first->Send(kGetEcho));
  ASSERT_TRUE(first->ReadResponse());  // served: it holds the one place

  Client over(server->port());
  EXPECT_TRUE(over.ClosedByServer());
  EXPECT_EQ(server->open_connections(), 1u);

  first.reset();
  ASSERT_TRUE(Eventually([&] { return server->open_connections() == 0; }));
  Client next(server->port());
  ASSERT_TRUE(next.Send(kGetEcho));
  auto response = next.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

using bpt::testing::MakeCertificates;
using bpt::testing::TempDir;

std::optional<ParsedResponse> GetOver(int port, const TlsClientSetup* tls) {
  Client client(port, tls);
  if (!client.connected() || !client.Send(kGetEcho)) return std::nullopt;
  return client.ReadResponse();
}

// The certificates are made once for the suite: openssl's RSA key generation is most of its time.
class HttpServerTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    MakeCertificates(*dir_);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static HttpServerOptions TlsOptions() {
    auto options = LoopbackOptions();
    options.tls_cert = *dir_ / "server.pem";
    options.tls_key = *dir_ / "server.key";
    return options;
  }
  static TlsClientSetup TrustOnly() { return {*dir_ / "ca.pem", "", ""}; }
  static TlsClientSetup WithClientCertificate() { return {*dir_ / "ca.pem", *dir_ / "client.pem", *dir_ / "client.key"}; }

  static TempDir* dir_;
};
TempDir* HttpServerTls::dir_ = nullptr;

TEST_F(HttpServerTls, TlsRoundTrip) {
  TestHandler handler;
  auto server = StartServer(TlsOptions(), &handler);
  ASSERT_NE(server, nullptr);
  const TlsClientSetup trust_only = TrustOnly();
  auto response = GetOver(server->port(), &trust_only);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /echo ");
  EXPECT_FALSE(GetOver(server->port(), nullptr));  // plain HTTP to a TLS port
}

TEST_F(HttpServerTls, MutualTlsRequiresAClientCertificate) {
  TestHandler handler;
  auto options = TlsOptions();
  options.tls_client_ca = *dir_ / "ca.pem";
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  const TlsClientSetup with_client_cert = WithClientCertificate();
  auto response = GetOver(server->port(), &with_client_cert);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /echo ");
  const TlsClientSetup trust_only = TrustOnly();
  EXPECT_FALSE(GetOver(server->port(), &trust_only));
  EXPECT_EQ(handler.requests, 1);
}

TEST_F(HttpServerTls, ClientGoneIsSeenOverTls) {
  TestHandler handler;
  auto server = StartServer(TlsOptions(), &handler);
  ASSERT_NE(server, nullptr);
  const TlsClientSetup trust_only = TrustOnly();
  {
    Client client(server->port(), &trust_only);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.Send("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
    ASSERT_NE(handler.NextHeld(), nullptr);
  }
  EXPECT_TRUE(handler.on_close.Wait());
}

// A TLS 1.2 client that reconnects with its session resumes it, with a client certificate
// required: OpenSSL refuses such a resumption unless the server's context has a session id context.
TEST_F(HttpServerTls, MutualTlsSessionIsResumed) {
  TestHandler handler;
  auto options = TlsOptions();
  options.tls_client_ca = *dir_ / "ca.pem";
  auto server = StartServer(options, &handler);
  ASSERT_NE(server, nullptr);
  TlsClientSetup setup = WithClientCertificate();
  setup.max_version = TLS1_2_VERSION;
  UniqueSession session;
  {
    Client first(server->port(), &setup);
    ASSERT_TRUE(first.connected());
    EXPECT_FALSE(first.resumed_session());
    ASSERT_TRUE(first.Send(kGetEcho));
    ASSERT_TRUE(first.ReadResponse());
    session = first.CloseTls();
  }
  ASSERT_NE(session, nullptr);
  setup.resume = session.get();
  Client second(server->port(), &setup);
  ASSERT_TRUE(second.connected());
  EXPECT_TRUE(second.resumed_session());
  ASSERT_TRUE(second.Send(kGetEcho));
  auto response = second.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /echo ");
  EXPECT_EQ(handler.requests, 2);
}

TEST(HttpServerOptions, BadOptionsAreRefusedNamingTheField) {
  TestHandler handler;
  auto options = LoopbackOptions();
  options.io_threads = 0;
  auto no_threads = HttpServer::Start(options, &handler);
  ASSERT_FALSE(no_threads.ok());
  EXPECT_NE(no_threads.status().message().find("io_threads"), std::string::npos);

  options = LoopbackOptions();
  options.tls_cert = "/nonexistent/server.pem";
  options.tls_key = "/nonexistent/server.key";
  auto missing_cert = HttpServer::Start(options, &handler);
  ASSERT_FALSE(missing_cert.ok());
  EXPECT_NE(missing_cert.status().message().find("tls_cert '/nonexistent/server.pem'"), std::string::npos)
      << missing_cert.status().message();

  options = LoopbackOptions();
  options.tls_cert = "/nonexistent/server.pem";
  auto no_key = HttpServer::Start(options, &handler);
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find("tls_key"), std::string::npos);

  auto first = StartServer(LoopbackOptions(), &handler);
  ASSERT_NE(first, nullptr);
  options = LoopbackOptions();
  options.port = first->port();
  auto taken = HttpServer::Start(options, &handler);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.status().message().find(std::to_string(first->port())), std::string::npos);
}

}  // namespace
}  // namespace bpt::server::http
