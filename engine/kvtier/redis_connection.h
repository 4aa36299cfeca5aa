// One connection to Redis, plain TCP or TLS (OpenSSL), for the shared KV tier: hiredis only
// formats commands (redisFormatCommandArgv) and parses replies (its redisReader); the bytes go
// over a non-blocking socket of our own, either straight or through an SSL session, so both
// take the same command path. Every step but the name lookup (getaddrinfo, as in hiredis;
// keep the host an IP or a name the cluster's DNS answers at once) is bounded: connecting (each
// address the lookup gives, IPv4 or IPv6) and the TLS handshake together by one timeout, each
// command by another of the same length; a stream that fails or times out is left for the caller to drop (a late
// reply must never answer the next command). Writes never raise SIGPIPE (send with
// MSG_NOSIGNAL, for TLS too: the SSL session writes through a BIO that sends the same way).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

struct redisReader;
struct redisReply;
struct ssl_ctx_st;  // SSL_CTX

namespace bpt {

struct RedisReplyDeleter {
  void operator()(redisReply* reply) const;
};
// A reply as hiredis parses it (REDIS_REPLY_* in <hiredis/hiredis.h>).
using RedisReply = std::unique_ptr<redisReply, RedisReplyDeleter>;

// What a rediss:// connection trusts and shows. Errors name the fields as the engine's options
// do (kv_remote_tls_*).
struct RedisTlsOptions {
  std::string ca_file;    // PEM bundle the server's certificate must chain to; empty: the system's CAs
  std::string cert_file;  // client certificate chain (PEM), for tls-auth-clients; with key_file
  std::string key_file;
};

// The client side of TLS, shared by every connection of a tier: the peer's certificate is always
// verified, and so is its name (RedisConnection::Open's server_name).
class RedisTlsContext {
 public:
  // NotFound naming the field for a file that cannot be read; InvalidArgument for one that holds
  // no usable PEM, a key that is not the certificate's, or only one of cert_file and key_file.
  static StatusOr<std::unique_ptr<RedisTlsContext>> Create(const RedisTlsOptions& options);
  ~RedisTlsContext();
  RedisTlsContext(const RedisTlsContext&) = delete;
  RedisTlsContext& operator=(const RedisTlsContext&) = delete;

  ssl_ctx_st* ctx() const { return ctx_; }

 private:
  explicit RedisTlsContext(ssl_ctx_st* ctx) : ctx_(ctx) {}
  ssl_ctx_st* ctx_;
};

class RedisConnection {
 public:
  class Transport;  // the byte stream: a socket, or a TLS session over one

  // Connects to host:port within timeout_ms, then (tls not null) runs the TLS handshake within
  // what is left of it, with SNI and certificate checks for server_name (a DNS name, or an IP
  // address checked against the certificate's IP entries). Unavailable when nothing answers in
  // time; FailedPrecondition when the peer's certificate does not verify (OpenSSL's reason in
  // the message) or the TLS handshake fails otherwise: a configuration error, not an outage.
  static StatusOr<std::unique_ptr<RedisConnection>> Open(const std::string& host, int port, const RedisTlsContext* tls,
                                                         const std::string& server_name, int timeout_ms);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends one command and waits, at most timeout_ms, for its reply (an error reply is a reply).
  // Unavailable when the stream fails, closes or times out: the connection is then unusable. A
  // TLS failure before the first reply (a server refusing this client's certificate does so
  // after the client's handshake, with TLS 1.3) is FailedPrecondition, as at Open.
  StatusOr<RedisReply> Command(std::span<const std::string_view> args);
  StatusOr<RedisReply> Command(std::initializer_list<std::string_view> args) {
    return Command(std::span<const std::string_view>(args.begin(), args.size()));
  }

 private:
  RedisConnection(std::unique_ptr<Transport> transport, int timeout_ms);

  std::unique_ptr<Transport> transport_;
  redisReader* reader_;
  int timeout_ms_;
  bool replied_ = false;  // a reply came: the TLS session is established both ways
  std::vector<char> buffer_;
};

}  // namespace bpt
