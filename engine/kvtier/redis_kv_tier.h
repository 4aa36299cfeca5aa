// The shared tier: chunks in Redis under "bptkv:<namespace>:<key hex>", the namespace naming the
// tier key (KvChunkCodec::key_id), so every replica with the same key pointed at the same
// Redis reads the documents any of them computed. Redis's own maxmemory with an LRU policy is
// the budget (the deploy sets it); chunks there carry an HMAC, so a writable Redis cannot feed
// KV to the replicas. One connection (plain, or TLS for rediss://: redis_connection.h), shared
// by the loader and storer threads under a lock, with a connect and a command timeout: a Redis
// that is down or slow costs at most a timeout per call and the request recomputes; the next
// call reconnects.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "kv_tier.h"
#include "redis_connection.h"

namespace bpt {

struct RedisKvTierOptions {
  std::string url;       // redis[s]://[[user]:password@]host[:port][/db]; rediss://: TLS
  std::string password;  // from --kv-remote-password-file; overrides the URL's
  int timeout_ms = 2000;  // connect (with the TLS handshake) and each command
  // rediss:// only (InvalidArgument otherwise). The server's certificate is always verified, for
  // tls_server_name: against tls_ca_file (PEM), or the system's CAs when it is empty.
  std::string tls_ca_file;
  std::string tls_cert_file;    // client certificate (Redis's tls-auth-clients), with tls_key_file
  std::string tls_key_file;
  std::string tls_server_name;  // SNI and the name the certificate must carry; empty: the URL's host
  // Replicas under another tier key (a rotated one) use their own names, so neither reads the
  // other's chunks as forged: old chunks age out by Redis's LRU.
  std::string key_namespace;
};

struct RedisAddress {
  bool tls = false;  // rediss://
  std::string host;  // an IPv6 address without the URL's brackets
  int port = 6379;
  std::string user;
  std::string password;
  int db = 0;
};
// InvalidArgument naming kv_remote when the URL is not of that form (an IPv6 host in brackets:
// redis://[::1]:6379).
StatusOr<RedisAddress> ParseRedisUrl(const std::string& url);

class RedisKvTier : public KvTier {
 public:
  // Parses the URL, loads the TLS files and tries a first connection; a Redis that is down now is
  // not an error (the server serves without it until it answers). A refused AUTH
  // (Unauthenticated) or TLS session (FailedPrecondition: a certificate that does not verify,
  // with OpenSSL's reason, or the server refusing this client's) is a configuration error.
  static StatusOr<std::unique_ptr<RedisKvTier>> Open(const RedisKvTierOptions& options);
  ~RedisKvTier() override;

  const char* name() const override { return "remote"; }
  bool shared() const override { return true; }
  Status Get(const ChunkKey& key, std::vector<uint8_t>* out) override;
  StatusOr<bool> Contains(const ChunkKey& key) override;
  Status Put(const ChunkKey& key, std::span<const uint8_t> bytes, int64_t pin_until_s) override;
  void Drop(const ChunkKey& key) override;
  int64_t bytes_used() const override { return -1; }
  int64_t budget_bytes() const override { return -1; }
  bool connected() const;

 private:
  RedisKvTier(RedisAddress address, int timeout_ms, std::string key_namespace, std::unique_ptr<RedisTlsContext> tls,
              std::string server_name);
  Status ConnectLocked();
  void DisconnectLocked();
  // One command on the connection, made first when there is none; a failed exchange drops it
  // (a timed-out connection may still deliver the late reply: the next call starts afresh).
  StatusOr<RedisReply> CommandLocked(std::initializer_list<std::string_view> args);
  std::string RedisKey(const ChunkKey& key) const { return prefix_ + key.Hex(); }

  const RedisAddress address_;
  const int timeout_ms_;
  const std::string prefix_;
  const std::unique_ptr<RedisTlsContext> tls_;  // null: plain TCP
  const std::string server_name_;
  const std::string where_;  // "redis host:port" in messages
  mutable std::mutex mu_;
  std::unique_ptr<RedisConnection> connection_;
};

}  // namespace bpt
