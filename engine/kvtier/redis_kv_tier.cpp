#include "redis_kv_tier.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>

#include <cstring>

namespace bpt {
namespace {

// Owns a reply; hiredis hands each one to the caller to free.
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// hiredis writes with write(2): a write to a connection Redis has closed (Redis restarted or
// killed while a chunk is sent) raises SIGPIPE, whose default action ends the whole server. For
// each exchange with Redis it is blocked on the calling thread, and one raised meanwhile is
// taken off the pending set, so the write fails with EPIPE and the tier reports Unavailable.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;  // someone else's: left for them
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeBlock() {
    if (!blocked_) return;
    if (!was_pending_) {
      const timespec zero{0, 0};
      sigtimedwait(&pipe_, nullptr, &zero);  // ours, if a write raised one
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
  bool blocked_ = false;
};

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

}  // namespace

StatusOr<RedisAddress> ParseRedisUrl(const std::string& url) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgument("kv_remote '" + url + "' is not redis://[[user]:password@]host[:port][/db]: " + why);
  };
  constexpr char kScheme[] = "redis://";
  if (url.rfind(kScheme, 0) != 0) return bad(url.rfind("rediss://", 0) == 0 ? "TLS (rediss://) is not supported by this build's hiredis 0.14" : "the scheme must be redis://");
  std::string rest = url.substr(std::strlen(kScheme));
  RedisAddress address;
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
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos) {
    if (!ParseInt(rest.substr(colon + 1), 1, 65535, &address.port)) return bad("the port must be 1-65535");
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("no host");
  address.host = rest;
  return address;
}

StatusOr<std::unique_ptr<RedisKvTier>> RedisKvTier::Open(const RedisKvTierOptions& options) {
  if (options.timeout_ms < 1) return InvalidArgument("kv_remote_timeout_ms must be >= 1");
  BPT_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(options.url));
  if (!options.password.empty()) address.password = options.password;
  std::unique_ptr<RedisKvTier> tier(new RedisKvTier(std::move(address), options.timeout_ms, options.key_namespace));
  std::lock_guard<std::mutex> lock(tier->mu_);
  const SigpipeBlock no_sigpipe;
  const Status first = tier->ConnectLocked();
  // AUTH refused is a configuration error, not an outage: say so at start.
  if (first.code() == StatusCode::kUnauthenticated) return first;
  return tier;
}

RedisKvTier::~RedisKvTier() {
  std::lock_guard<std::mutex> lock(mu_);
  DisconnectLocked();
}

void RedisKvTier::DisconnectLocked() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
}

bool RedisKvTier::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return context_ != nullptr;
}

Status RedisKvTier::ConnectLocked() {
  if (context_ != nullptr) return OkStatus();
  const timeval timeout{timeout_ms_ / 1000, (timeout_ms_ % 1000) * 1000};
  redisContext* c = redisConnectWithTimeout(address_.host.c_str(), address_.port, timeout);
  const std::string where = "redis " + address_.host + ":" + std::to_string(address_.port);
  if (c == nullptr) return Unavailable(where + ": cannot allocate a connection");
  if (c->err != 0) {
    const Status s = Unavailable(where + ": " + c->errstr);
    redisFree(c);
    return s;
  }
  redisSetTimeout(c, timeout);
  context_ = c;
  if (!address_.password.empty()) {
    Reply auth(static_cast<redisReply*>(
        address_.user.empty()
            ? redisCommand(c, "AUTH %b", address_.password.data(), address_.password.size())
            : redisCommand(c, "AUTH %b %b", address_.user.data(), address_.user.size(), address_.password.data(),
                           address_.password.size())));
    if (auth == nullptr || auth->type == REDIS_REPLY_ERROR) {
      const std::string why = auth == nullptr ? std::string(c->errstr) : std::string(auth->str, auth->len);
      DisconnectLocked();
      return Status(auth == nullptr ? StatusCode::kUnavailable : StatusCode::kUnauthenticated, where + ": AUTH: " + why);
    }
  }
  if (address_.db != 0) {
    Reply select(static_cast<redisReply*>(redisCommand(c, "SELECT %d", address_.db)));
    if (select == nullptr || select->type == REDIS_REPLY_ERROR) {
      DisconnectLocked();
      return Unavailable(where + ": SELECT " + std::to_string(address_.db) + " failed");
    }
  }
  return OkStatus();
}

Status RedisKvTier::Get(const ChunkKey& key, std::vector<uint8_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  const SigpipeBlock no_sigpipe;
  BPT_RETURN_IF_ERROR(ConnectLocked());
  const std::string k = RedisKey(key);
  Reply reply(static_cast<redisReply*>(redisCommand(context_, "GET %b", k.data(), k.size())));
  if (reply == nullptr) {
    const Status s = Unavailable(std::string("redis GET: ") + context_->errstr);
    DisconnectLocked();  // a timed-out connection may still deliver the late reply: start afresh
    return s;
  }
  if (reply->type == REDIS_REPLY_NIL) return NotFound("not in redis");
  if (reply->type == REDIS_REPLY_ERROR) return Unavailable("redis GET: " + std::string(reply->str, reply->len));
  if (reply->type != REDIS_REPLY_STRING) return Unavailable("redis GET: unexpected reply type " + std::to_string(reply->type));
  out->assign(reinterpret_cast<const uint8_t*>(reply->str), reinterpret_cast<const uint8_t*>(reply->str) + reply->len);
  return OkStatus();
}

StatusOr<bool> RedisKvTier::Contains(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  const SigpipeBlock no_sigpipe;
  BPT_RETURN_IF_ERROR(ConnectLocked());
  const std::string k = RedisKey(key);
  Reply reply(static_cast<redisReply*>(redisCommand(context_, "EXISTS %b", k.data(), k.size())));
  if (reply == nullptr) {
    const Status s = Unavailable(std::string("redis EXISTS: ") + context_->errstr);
    DisconnectLocked();
    return s;
  }
  if (reply->type != REDIS_REPLY_INTEGER) return Unavailable("redis EXISTS: unexpected reply");
  return reply->integer != 0;
}

Status RedisKvTier::Put(const ChunkKey& key, std::span<const uint8_t> bytes, int64_t) {
  std::lock_guard<std::mutex> lock(mu_);
  const SigpipeBlock no_sigpipe;
  BPT_RETURN_IF_ERROR(ConnectLocked());
  const std::string k = RedisKey(key);
  Reply reply(static_cast<redisReply*>(redisCommand(context_, "SET %b %b", k.data(), k.size(), bytes.data(), bytes.size())));
  if (reply == nullptr) {
    const Status s = Unavailable(std::string("redis SET: ") + context_->errstr);
    DisconnectLocked();
    return s;
  }
  if (reply->type == REDIS_REPLY_ERROR) return Unavailable("redis SET: " + std::string(reply->str, reply->len));
  return OkStatus();
}

void RedisKvTier::Drop(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  const SigpipeBlock no_sigpipe;
  if (!ConnectLocked().ok()) return;
  const std::string k = RedisKey(key);
  Reply reply(static_cast<redisReply*>(redisCommand(context_, "DEL %b", k.data(), k.size())));
  if (reply == nullptr) DisconnectLocked();
}

}  // namespace bpt
