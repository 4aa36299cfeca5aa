// The shared tier: chunks in Redis under "bptkv:<namespace>:<key hex>", the namespace naming the
// tier key (KvChunkCodec::key_id), so every replica with the same key pointed at the same
// Redis reads the documents any of them computed. Redis's own maxmemory with an LRU policy is
// the budget (the deploy sets it); chunks there carry an HMAC, so a writable Redis cannot feed
// KV to the replicas. One connection, shared by the loader and storer threads under a lock, with
// a connect and a command timeout: a Redis that is down or slow costs at most a timeout per call
// and the request recomputes; the next call reconnects.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "kv_tier.h"

struct redisContext;

namespace bpt {

struct RedisKvTierOptions {
  std::string url;       // redis://[[user]:password@]host[:port][/db]
  std::string password;  // from --kv-remote-password-file; overrides the URL's
  int timeout_ms = 2000;  // connect and each command
  // Replicas under another tier key (a rotated one) use their own names, so neither reads the
  // other's chunks as forged: old chunks age out by Redis's LRU.
  std::string key_namespace;
};

struct RedisAddress {
  std::string host;
  int port = 6379;
  std::string user;
  std::string password;
  int db = 0;
};
// InvalidArgument naming kv_remote when the URL is not of that form.
StatusOr<RedisAddress> ParseRedisUrl(const std::string& url);

class RedisKvTier : public KvTier {
 public:
  // Parses the URL and tries a first connection; a Redis that is down now is not an error (the
  // server serves without it until it answers).
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
  RedisKvTier(RedisAddress address, int timeout_ms, std::string key_namespace)
      : address_(std::move(address)), timeout_ms_(timeout_ms), prefix_("bptkv:" + key_namespace + ":") {}
  Status ConnectLocked();
  void DisconnectLocked();
  std::string RedisKey(const ChunkKey& key) const { return prefix_ + key.Hex(); }

  RedisAddress address_;
  int timeout_ms_;
  std::string prefix_;
  mutable std::mutex mu_;
  redisContext* context_ = nullptr;
};

}  // namespace bpt
