#include "redis_connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <system_error>

namespace bpt {

void RedisReplyDeleter::operator()(redisReply* reply) const { freeReplyObject(reply); }

namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoText(int e) { return std::error_code(e, std::generic_category()).message(); }

// OpenSSL's reasons queued on this thread, oldest first, and the queue emptied.
std::string OpenSslErrors() {
  std::string text;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    const char* reason = ERR_reason_error_string(e);
    if (reason == nullptr) {
      ERR_error_string_n(e, buf, sizeof(buf));
      reason = buf;
    }
    text.append(text.empty() ? "" : "; ").append(reason);
  }
  return text.empty() ? "no reason given" : text;
}

// Waits until fd is ready for `events` (POLLIN or POLLOUT) or has failed (the next read or write
// says how); Unavailable once the deadline passes.
Status WaitFor(int fd, short events, Clock::time_point deadline, int timeout_ms) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Unavailable("no answer within " + std::to_string(timeout_ms) + " ms");
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, static_cast<int>(left));
    if (r > 0) return OkStatus();
    if (r < 0 && errno != EINTR) return Unavailable("poll: " + ErrnoText(errno));
  }
}

// recv and send on a non-blocking socket, EINTR retried; send never raises SIGPIPE (a write to a
// connection Redis has closed fails with EPIPE instead of ending the process).
ssize_t RecvSome(int fd, char* data, size_t n) {
  ssize_t r;
  do r = recv(fd, data, n, 0);
  while (r < 0 && errno == EINTR);
  return r;
}
ssize_t SendSome(int fd, const char* data, size_t n) {
  ssize_t r;
  do r = send(fd, data, n, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r;
}
bool WouldBlock(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

// A connected non-blocking TCP socket to host:port: each address getaddrinfo gives (IPv4 or
// IPv6) in turn, all within the deadline.
StatusOr<int> ConnectSocket(const std::string& host, int port, Clock::time_point deadline, int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int resolved = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (resolved != 0)
    return Unavailable("cannot resolve '" + host + "': " + (resolved == EAI_SYSTEM ? ErrnoText(errno) : gai_strerror(resolved)));
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  std::string why = "no address";
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char numeric[NI_MAXHOST] = "?";
    getnameinfo(a->ai_addr, a->ai_addrlen, numeric, sizeof(numeric), nullptr, 0, NI_NUMERICHOST);
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = std::string("socket for ") + numeric + ": " + ErrnoText(errno);
      continue;
    }
    int error = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (error == EINPROGRESS || error == EINTR) {  // either way the connection goes on by itself
      const Status ready = WaitFor(fd, POLLOUT, deadline, timeout_ms);
      if (!ready.ok()) {
        close(fd);
        return Unavailable(std::string("connect to ") + numeric + ": " + ready.message());
      }
      socklen_t len = sizeof(error);
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
    }
    if (error == 0) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // a command is one write: send it now
      return fd;
    }
    why = std::string("connect to ") + numeric + ": " + ErrnoText(error);
    close(fd);
  }
  return Unavailable(why);
}

// One read or write on a non-blocking stream: bytes moved, or the readiness to wait for before
// trying again, or why the stream failed.
struct Io {
  size_t bytes = 0;
  short wait = 0;            // POLLIN or POLLOUT
  std::string error;         // non-empty: failed
  bool tls_failure = false;  // a TLS protocol error (an alert, a bad record), not an I/O one
};

Io Failed(std::string why, bool tls = false) {
  Io io;
  io.error = std::move(why);
  io.tls_failure = tls;
  return io;
}
Io Retry(short events) {
  Io io;
  io.wait = events;
  return io;
}

}  // namespace

class RedisConnection::Transport {
 public:
  explicit Transport(int fd) : fd_(fd) {}
  virtual ~Transport() { close(fd_); }
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  virtual Io Read(char* data, size_t n) = 0;
  virtual Io Write(const char* data, size_t n) = 0;
  // Why a stream that fails before its first reply was likely refused, or "".
  virtual std::string RefusalHint() const { return ""; }
  int fd() const { return fd_; }

 protected:
  const int fd_;
};

namespace {

class PlainTransport final : public RedisConnection::Transport {
 public:
  using Transport::Transport;
  Io Read(char* data, size_t n) override { return Result(RecvSome(fd_, data, n), POLLIN); }
  Io Write(const char* data, size_t n) override { return Result(SendSome(fd_, data, n), POLLOUT); }

 private:
  static Io Result(ssize_t r, short wait) {
    if (r > 0) {
      Io io;
      io.bytes = static_cast<size_t>(r);
      return io;
    }
    if (r == 0) return Failed("the server closed the connection");
    return WouldBlock(errno) ? Retry(wait) : Failed(ErrnoText(errno));
  }
};

// The SSL session's socket BIO: OpenSSL's own writes with write(2), which raises SIGPIPE on a
// connection the server has closed; this one sends with MSG_NOSIGNAL. The descriptor is the
// BIO's data; the transport closes it.
int SocketOf(BIO* bio) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio))); }
int BioWrite(BIO* bio, const char* data, int n) {
  BIO_clear_retry_flags(bio);
  const ssize_t r = SendSome(SocketOf(bio), data, static_cast<size_t>(n));
  if (r < 0 && WouldBlock(errno)) BIO_set_retry_write(bio);
  return static_cast<int>(r);
}
int BioRead(BIO* bio, char* data, int n) {
  BIO_clear_retry_flags(bio);
  const ssize_t r = RecvSome(SocketOf(bio), data, static_cast<size_t>(n));
  if (r < 0 && WouldBlock(errno)) BIO_set_retry_read(bio);
  return static_cast<int>(r);
}
long BioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }  // nothing is buffered here
int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}
const BIO_METHOD* NoSigpipeSocket() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "bptserve redis socket");
    if (m != nullptr) {
      BIO_meth_set_write(m, BioWrite);
      BIO_meth_set_read(m, BioRead);
      BIO_meth_set_ctrl(m, BioCtrl);
      BIO_meth_set_create(m, BioCreate);
    }
    return m;
  }();
  return method;
}

class TlsTransport final : public RedisConnection::Transport {
 public:
  TlsTransport(int fd, SSL* ssl) : Transport(fd), ssl_(ssl) {
    // Called when the server asks for a client certificate, whether one is set or not.
    const auto asked = [](SSL*, void* flag) -> int {
      *static_cast<bool*>(flag) = true;
      return 1;  // go on, with the certificate set or none
    };
    SSL_set_cert_cb(ssl_, asked, &asked_for_certificate_);
  }
  ~TlsTransport() override { SSL_free(ssl_); }

  Io Read(char* data, size_t n) override {
    Start();
    return Result(SSL_read(ssl_, data, static_cast<int>(std::min<size_t>(n, INT_MAX))));
  }
  Io Write(const char* data, size_t n) override {
    Start();
    return Result(SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(n, INT_MAX))));
  }

  // The client's handshake for server_name, within the deadline.
  Status Handshake(const std::string& server_name, Clock::time_point deadline, int timeout_ms) {
    const BIO_METHOD* method = NoSigpipeSocket();
    BIO* bio = method != nullptr ? BIO_new(method) : nullptr;
    if (bio == nullptr) return Internal("TLS: cannot make a socket BIO: " + OpenSslErrors());
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd_)));
    SSL_set_bio(ssl_, bio, bio);  // the session owns it
    unsigned char address[sizeof(in6_addr)];
    const bool ip = inet_pton(AF_INET, server_name.c_str(), address) == 1 ||
                    inet_pton(AF_INET6, server_name.c_str(), address) == 1;
    // An IP address is matched against the certificate's IP entries, and is no SNI name (RFC 6066).
    const bool named = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), server_name.c_str()) == 1
                          : SSL_set_tlsext_host_name(ssl_, server_name.c_str()) == 1 &&
                                SSL_set1_host(ssl_, server_name.c_str()) == 1;
    if (!named) return InvalidArgument("TLS: cannot check the server's certificate for '" + server_name + "': " + OpenSslErrors());
    for (;;) {
      Start();
      const int r = SSL_connect(ssl_);
      if (r == 1) return OkStatus();
      const Io io = Result(r);
      if (io.wait != 0) {
        const Status ready = WaitFor(fd_, io.wait, deadline, timeout_ms);
        if (!ready.ok()) return Unavailable("TLS handshake: " + ready.message());
        continue;
      }
      const long verified = SSL_get_verify_result(ssl_);
      if (verified != X509_V_OK)
        return FailedPrecondition("TLS: the server's certificate does not verify for '" + server_name +
                                  "': " + X509_verify_cert_error_string(verified));
      if (io.tls_failure) return FailedPrecondition("TLS handshake failed: " + io.error + RefusalHint());
      return Unavailable("TLS handshake: " + io.error);
    }
  }

  // A TLS 1.3 server checks the client's certificate after the client's side of the handshake
  // ends, and refuses it with an alert, which is lost when the server's close resets the
  // connection (the client's first command unread): either way, a server that asked for a
  // certificate and ended the session before the first reply most likely refused this client.
  std::string RefusalHint() const override {
    if (!asked_for_certificate_) return "";
    return SSL_get_certificate(ssl_) == nullptr
               ? " (the server asked for a client certificate, and none is set: kv_remote_tls_cert_file)"
               : " (the server asked for a client certificate: does it trust kv_remote_tls_cert_file's?)";
  }

 private:
  // SSL_get_error reads this thread's error queue and errno: both start clean.
  static void Start() {
    ERR_clear_error();
    errno = 0;
  }
  Io Result(int r) {
    if (r > 0) {
      Io io;
      io.bytes = static_cast<size_t>(r);
      return io;
    }
    const int saved_errno = errno;
    switch (SSL_get_error(ssl_, r)) {
      case SSL_ERROR_WANT_READ:
        return Retry(POLLIN);
      case SSL_ERROR_WANT_WRITE:
        return Retry(POLLOUT);
      case SSL_ERROR_ZERO_RETURN:
        return Failed("the server closed the TLS session");
      case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return Failed(saved_errno != 0 ? ErrnoText(saved_errno) : "the server closed the connection");
      default: {
        const unsigned long first = ERR_peek_error();
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
        if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
          ERR_clear_error();
          return Failed("the server closed the connection");
        }
#endif
        return Failed(OpenSslErrors(), /*tls=*/true);
      }
    }
  }

  SSL* const ssl_;
  bool asked_for_certificate_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<RedisTlsContext>> RedisTlsContext::Create(const RedisTlsOptions& options) {
  if (options.cert_file.empty() != options.key_file.empty())
    return InvalidArgument("kv_remote_tls_cert_file and kv_remote_tls_key_file go together: a client certificate and its key");
  const std::pair<const char*, const std::string*> files[] = {
      {"kv_remote_tls_ca_file", &options.ca_file},
      {"kv_remote_tls_cert_file", &options.cert_file},
      {"kv_remote_tls_key_file", &options.key_file}};
  for (const auto& [field, path] : files) {
    if (path->empty()) continue;
    const int fd = open(path->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NotFound(std::string(field) + " '" + *path + "' cannot be read: " + ErrnoText(errno));
    close(fd);
  }
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Internal("TLS: cannot make a context: " + OpenSslErrors());
  std::unique_ptr<RedisTlsContext> context(new RedisTlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);  // and the name: per connection
  // A write that would block is retried with what is left of the command, from where it stopped.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1)
      return InvalidArgument("kv_remote_tls_ca_file '" + options.ca_file + "' holds no PEM certificate: " + OpenSslErrors());
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return FailedPrecondition("TLS: the system's CA certificates cannot be loaded (set kv_remote_tls_ca_file): " +
                              OpenSslErrors());
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1)
      return InvalidArgument("kv_remote_tls_cert_file '" + options.cert_file + "' holds no PEM certificate: " + OpenSslErrors());
    if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)
      return InvalidArgument("kv_remote_tls_key_file '" + options.key_file +
                             "' is not the PEM private key of kv_remote_tls_cert_file: " + OpenSslErrors());
  }
  return context;
}

RedisTlsContext::~RedisTlsContext() { SSL_CTX_free(ctx_); }

RedisConnection::RedisConnection(std::unique_ptr<Transport> transport, int timeout_ms)
    : transport_(std::move(transport)), reader_(redisReaderCreate()), timeout_ms_(timeout_ms), buffer_(64 << 10) {}

RedisConnection::~RedisConnection() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Open(const std::string& host, int port,
                                                                 const RedisTlsContext* tls,
                                                                 const std::string& server_name, int timeout_ms) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  BPT_ASSIGN_OR_RETURN(const int fd, ConnectSocket(host, port, deadline, timeout_ms));
  std::unique_ptr<Transport> transport;
  if (tls == nullptr) {
    transport = std::make_unique<PlainTransport>(fd);
  } else {
    ERR_clear_error();
    SSL* ssl = SSL_new(tls->ctx());
    if (ssl == nullptr) {
      close(fd);
      return Internal("TLS: cannot make a session: " + OpenSslErrors());
    }
    auto session = std::make_unique<TlsTransport>(fd, ssl);
    BPT_RETURN_IF_ERROR(session->Handshake(server_name, deadline, timeout_ms));
    transport = std::move(session);
  }
  std::unique_ptr<RedisConnection> connection(new RedisConnection(std::move(transport), timeout_ms));
  if (connection->reader_ == nullptr) return Internal("cannot make a reply reader");
  return connection;
}

StatusOr<RedisReply> RedisConnection::Command(std::span<const std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string_view a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  char* formatted = nullptr;
  const int length = redisFormatCommandArgv(&formatted, static_cast<int>(args.size()), argv.data(), lengths.data());
  if (length < 0) return Internal("cannot format the command");
  const std::unique_ptr<char, decltype(&redisFreeCommand)> command(formatted, redisFreeCommand);
  const auto failed = [&](const Io& io) {
    const std::string what = (io.tls_failure ? "TLS: " : "") + io.error;
    if (replied_) return Unavailable(what);
    // Before any reply: a TLS error, or a session ended by a server that asked for a client
    // certificate, is the server refusing this client, not an outage.
    const std::string hint = transport_->RefusalHint();
    return io.tls_failure || !hint.empty() ? FailedPrecondition(what + hint) : Unavailable(what);
  };
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (size_t sent = 0; sent < static_cast<size_t>(length);) {
    const Io io = transport_->Write(formatted + sent, static_cast<size_t>(length) - sent);
    if (!io.error.empty()) return failed(io);
    sent += io.bytes;
    if (io.wait != 0) BPT_RETURN_IF_ERROR(WaitFor(transport_->fd(), io.wait, deadline, timeout_ms_));
  }
  for (;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK)
      return Unavailable(std::string("not a Redis reply: ") + reader_->errstr);
    if (reply != nullptr) {
      replied_ = true;
      return RedisReply(static_cast<redisReply*>(reply));
    }
    const Io io = transport_->Read(buffer_.data(), buffer_.size());
    if (!io.error.empty()) return failed(io);
    if (io.bytes > 0) {
      redisReaderFeed(reader_, buffer_.data(), io.bytes);
    } else {
      BPT_RETURN_IF_ERROR(WaitFor(transport_->fd(), io.wait, deadline, timeout_ms_));
    }
  }
}

}  // namespace bpt
