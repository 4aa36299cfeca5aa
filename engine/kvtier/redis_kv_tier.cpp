#include "redis_kv_tier.h"

#include <hiredis/hiredis.h>

#include <cstring>
#include <utility>

namespace bpt {
namespace {

bool ParseInt(const std::string& s, int lo, int hi, int* out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

// A reply other than the one the command expects: Redis's error, or another type.
Status Unexpected(const std::string& what, const redisReply& reply) {
  if (reply.type == REDIS_REPLY_ERROR) return Unavailable(what + ": " + std::string(reply.str, reply.len));
  return Unavailable(what + ": unexpected reply type " + std::to_string(reply.type));
}

}  // namespace

StatusOr<RedisAddress> ParseRedisUrl(const std::string& url) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgument("kv_remote '" + url + "' is not redis[s]://[[user]:password@]host[:port][/db]: " + why);
  };
  RedisAddress address;
  std::string rest;
  if (url.rfind("redis://", 0) == 0) {
    rest = url.substr(std::strlen("redis://"));
  } else if (url.rfind("rediss://", 0) == 0) {
    address.tls = true;
    rest = url.substr(std::strlen("rediss://"));
  } else {
    return bad("the scheme must be redis:// or rediss:// (TLS)");
  }
  const size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    const std::string userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == std::string::npos) {
      address.password = userinfo;
    } else {
      address.user = userinfo.substr(0, colon);
      address.password = userinfo.substr(colon + 1);
    }
  }
  const size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    if (!ParseInt(rest.substr(slash + 1), 0, 1 << 20, &address.db)) return bad("the database must be a number");
    rest = rest.substr(0, slash);
  }
  size_t port_at = std::string::npos;  // where ":port" starts
  if (rest.rfind('[', 0) == 0) {         // [IPv6]
    const size_t close = rest.find(']');
    if (close == std::string::npos) return bad("no ] after the IPv6 address");
    if (close + 1 < rest.size() && rest[close + 1] != ':') return bad("only :port may follow the IPv6 address's ]");
    address.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) port_at = close + 1;
  } else {
    port_at = rest.rfind(':');
    address.host = rest.substr(0, port_at);
    if (address.host.find(':') != std::string::npos) return bad("an IPv6 address goes in brackets: [::1]:6379");
  }
  if (port_at != std::string::npos && !ParseInt(rest.substr(port_at + 1), 1, 65535, &address.port))
    return bad("the port must be 1-65535");
  if (address.host.empty()) return bad("no host");
  return address;
}

StatusOr<std::unique_ptr<RedisKvTier>> RedisKvTier::Open(const RedisKvTierOptions& options) {
  if (options.timeout_ms < 1) return InvalidArgument("kv_remote_timeout_ms must be >= 1");
  BPT_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(options.url));
  if (!options.password.empty()) address.password = options.password;
  std::unique_ptr<RedisTlsContext> tls;
  if (address.tls) {
    BPT_ASSIGN_OR_RETURN(tls, RedisTlsContext::Create({options.tls_ca_file, options.tls_cert_file, options.tls_key_file}));
  } else {
    for (const auto& [field, value] : {std::pair{"kv_remote_tls_ca_file", &options.tls_ca_file},
                                       std::pair{"kv_remote_tls_cert_file", &options.tls_cert_file},
                                       std::pair{"kv_remote_tls_key_file", &options.tls_key_file},
                                       std::pair{"kv_remote_tls_server_name", &options.tls_server_name}})
      if (!value->empty()) return InvalidArgument(std::string(field) + " is for TLS: kv_remote must then be rediss://");
  }
  std::string server_name = options.tls_server_name.empty() ? address.host : options.tls_server_name;
  std::unique_ptr<RedisKvTier> tier(
      new RedisKvTier(std::move(address), options.timeout_ms, options.key_namespace, std::move(tls), std::move(server_name)));
  std::lock_guard<std::mutex> lock(tier->mu_);
  const Status first = tier->ConnectLocked();
  // A refused AUTH or TLS session is a configuration error, not an outage: say so at start.
  if (!first.ok() && first.code() != StatusCode::kUnavailable) return first;
  return tier;
}

RedisKvTier::RedisKvTier(RedisAddress address, int timeout_ms, std::string key_namespace,
                         std::unique_ptr<RedisTlsContext> tls, std::string server_name)
    : address_(std::move(address)),
      timeout_ms_(timeout_ms),
      prefix_("bptkv:" + key_namespace + ":"),
      tls_(std::move(tls)),
      server_name_(std::move(server_name)),
      where_("redis " + address_.host + ":" + std::to_string(address_.port)) {}

RedisKvTier::~RedisKvTier() {
  std::lock_guard<std::mutex> lock(mu_);
  DisconnectLocked();
}

void RedisKvTier::DisconnectLocked() { connection_.reset(); }

bool RedisKvTier::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connection_ != nullptr;
}

Status RedisKvTier::ConnectLocked() {
  if (connection_ != nullptr) return OkStatus();
  StatusOr<std::unique_ptr<RedisConnection>> opened =
      RedisConnection::Open(address_.host, address_.port, tls_.get(), server_name_, timeout_ms_);
  if (!opened.ok()) return Status(opened.status().code(), where_ + ": " + opened.status().message());
  std::unique_ptr<RedisConnection> c = std::move(opened).value();
  // A command of the connection's setup; an error reply is `refused`.
  const auto setup = [&](const std::string& step, std::initializer_list<std::string_view> args, StatusCode refused) {
    const StatusOr<RedisReply> reply = c->Command(args);
    if (!reply.ok()) return Status(reply.status().code(), where_ + ": " + step + ": " + reply.status().message());
    if ((*reply)->type == REDIS_REPLY_ERROR)
      return Status(refused, where_ + ": " + step + ": " + std::string((*reply)->str, (*reply)->len));
    return OkStatus();
  };
  if (!address_.password.empty()) {
    BPT_RETURN_IF_ERROR(address_.user.empty()
                            ? setup("AUTH", {"AUTH", address_.password}, StatusCode::kUnauthenticated)
                            : setup("AUTH", {"AUTH", address_.user, address_.password}, StatusCode::kUnauthenticated));
  }
  if (address_.db != 0) {
    const std::string db = std::to_string(address_.db);
    BPT_RETURN_IF_ERROR(setup("SELECT " + db, {"SELECT", db}, StatusCode::kUnavailable));
  } else if (tls_ != nullptr && address_.password.empty()) {
    // A TLS 1.3 server refuses a client's certificate (or its lack) after the client's side of
    // the handshake: one exchange finds out now. Any reply will do (NOAUTH too: the session is up).
    const StatusOr<RedisReply> pong = c->Command({"PING"});
    if (!pong.ok()) return Status(pong.status().code(), where_ + ": PING: " + pong.status().message());
  }
  connection_ = std::move(c);
  return OkStatus();
}

StatusOr<RedisReply> RedisKvTier::CommandLocked(std::initializer_list<std::string_view> args) {
  BPT_RETURN_IF_ERROR(ConnectLocked());
  StatusOr<RedisReply> reply = connection_->Command(args);
  if (!reply.ok()) {
    DisconnectLocked();
    return Status(reply.status().code(), where_ + " " + std::string(*args.begin()) + ": " + reply.status().message());
  }
  return reply;
}

Status RedisKvTier::Get(const ChunkKey& key, std::vector<uint8_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  BPT_ASSIGN_OR_RETURN(const RedisReply reply, CommandLocked({"GET", RedisKey(key)}));
  if (reply->type == REDIS_REPLY_NIL) return NotFound("not in redis");
  if (reply->type != REDIS_REPLY_STRING) return Unexpected(where_ + " GET", *reply);
  out->assign(reinterpret_cast<const uint8_t*>(reply->str), reinterpret_cast<const uint8_t*>(reply->str) + reply->len);
  return OkStatus();
}

StatusOr<bool> RedisKvTier::Contains(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  BPT_ASSIGN_OR_RETURN(const RedisReply reply, CommandLocked({"EXISTS", RedisKey(key)}));
  if (reply->type != REDIS_REPLY_INTEGER) return Unexpected(where_ + " EXISTS", *reply);
  return reply->integer != 0;
}

Status RedisKvTier::Put(const ChunkKey& key, std::span<const uint8_t> bytes, int64_t) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string_view value(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  BPT_ASSIGN_OR_RETURN(const RedisReply reply, CommandLocked({"SET", RedisKey(key), value}));
  if (reply->type != REDIS_REPLY_STATUS) return Unexpected(where_ + " SET", *reply);
  return OkStatus();
}

void RedisKvTier::Drop(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  (void)CommandLocked({"DEL", RedisKey(key)});
}

}  // namespace bpt
