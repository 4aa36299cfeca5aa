// A private redis-server for a test: started on a free loopback port (127.0.0.1, and ::1 where the
// host has it) in a temporary directory, with no persistence, killed with the object. Tests that
// need one skip when redis-server is not installed (Debian: redis-server, which brings
// redis-cli):
//
//   auto redis = RedisTestServer::Start("password");
//   if (redis == nullptr) GTEST_SKIP() << "redis-server is not installed";
//
// StartTls adds a TLS port with certificates made for the test by openssl (test_certificates.h:
// a CA, the server's for localhost and 127.0.0.1, a client's), optionally requiring client
// certificates; it returns nullptr when openssl is not installed either. The fixture's own
// commands (readiness, CLIENT PAUSE, redis-cli) keep to the plain port beside it.
//
// Readiness is an answered PING, polled a bounded number of times; a server that exits first
// (its port taken meanwhile) is started again on another port. The server is a child of the
// thread that called Start (fork/exec) and is killed by the kernel if that thread dies first, so
// a test killed at its timeout leaves no redis-server behind.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"
#include "test_certificates.h"

namespace bpt::testing {

namespace redis_test_detail {

// The executable `name` on PATH, or "".
inline std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// A port no one listens on now: bound to 127.0.0.1:0, read back, closed. -1 on failure.
inline int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// fork/exec of argv[0] (a path) with stdin from /dev/null and stdout/stderr to the given
// descriptors; every other descriptor of the test is closed in the child, so a listening socket
// of the test never outlives its close in a redis-server. -1 when fork fails.
inline pid_t Spawn(const std::vector<std::string>& args, int stdout_fd, int stderr_fd) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  long max_fd = sysconf(_SC_OPEN_MAX);
  if (max_fd < 0 || max_fd > (1 << 16)) max_fd = 1 << 16;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls from here to exec
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(stdout_fd, 1);
    dup2(stderr_fd, 2);
    bool closed = false;
#ifdef SYS_close_range
    closed = syscall(SYS_close_range, 3U, ~0U, 0U) == 0;
#endif
    if (!closed)
      for (long fd = 3; fd < max_fd; ++fd) close(static_cast<int>(fd));
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (null_fd >= 0) close(null_fd);
  return pid;
}

inline std::string Resp(const std::vector<std::string>& args) {
  std::string out;  // appended piece by piece: gcc 12 warns (-Wrestrict, falsely) on "$" + std::string
  out.append("*").append(std::to_string(args.size())).append("\r\n");
  for (const std::string& a : args) out.append("$").append(std::to_string(a.size())).append("\r\n").append(a).append("\r\n");
  return out;
}

// Sends `commands` on one fresh connection to 127.0.0.1:port and returns the reply line of the
// last one ("+PONG", "-ERR ..."); every command must have a one-line reply (a status or an
// error). nullopt when the connection is refused or the replies do not come within timeout_ms.
inline std::optional<std::string> RawCommands(int port, const std::vector<std::vector<std::string>>& commands,
                                              int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  const timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return std::nullopt;
  }
  std::string request;
  for (const auto& c : commands) request += Resp(c);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return std::nullopt;
    }
    sent += static_cast<size_t>(n);
  }
  std::string received;
  size_t lines = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (lines < commands.size() && std::chrono::steady_clock::now() < deadline) {
    char buf[512];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed, or SO_RCVTIMEO passed
    received.append(buf, static_cast<size_t>(n));
    lines = 0;
    for (size_t at = received.find("\r\n"); at != std::string::npos; at = received.find("\r\n", at + 2)) ++lines;
  }
  close(fd);
  if (lines < commands.size()) return std::nullopt;
  size_t start = 0;  // the last command's reply: line number commands.size() - 1
  for (size_t i = 0; i + 1 < commands.size(); ++i) start = received.find("\r\n", start) + 2;
  return received.substr(start, received.find("\r\n", start) - start);
}

}  // namespace redis_test_detail

class RedisTestServer {
 public:
  // Starts `redis-server` (found on PATH, Debian package redis-server) on a free loopback port,
  // no persistence (--save "" --appendonly no), with --requirepass password when non-empty, in a
  // temp dir. Returns nullptr if redis-server is not installed (tests then GTEST_SKIP with a
  // message); a server that is installed but does not start is a test failure (and nullptr).
  static std::unique_ptr<RedisTestServer> Start(const std::string& password = "") {
    return Started(password, Tls::kOff);
  }

  // The same, with a TLS port too (tls_port(), tls_url()) whose certificate is for localhost and
  // 127.0.0.1 from ca_file(); with client_certificates, Redis requires clients to show one from
  // that CA (client_cert_file(), client_key_file()). nullptr also when openssl is not installed.
  static std::unique_ptr<RedisTestServer> StartTls(const std::string& password = "", bool client_certificates = false) {
    if (redis_test_detail::FindOnPath("openssl").empty()) return nullptr;
    return Started(password, client_certificates ? Tls::kClientCertificates : Tls::kOn);
  }

  ~RedisTestServer() { Stop(); }
  RedisTestServer(const RedisTestServer&) = delete;
  RedisTestServer& operator=(const RedisTestServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  int tls_port() const { return tls_port_; }
  std::string tls_url(const std::string& host = "localhost") const {
    return "rediss://" + host + ":" + std::to_string(tls_port_);
  }
  std::string ca_file() const { return dir_ / "ca.pem"; }
  std::string client_cert_file() const { return dir_ / "client.pem"; }
  std::string client_key_file() const { return dir_ / "client.key"; }

  // SIGTERM, and waits for it to exit (redis-server with no persistence exits at once; a hang is
  // the test's TIMEOUT's to catch). The port stays this server's for Restart.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    bool reaped = false;
    while (!reaped) {
      const pid_t r = waitpid(pid_, nullptr, 0);
      reaped = r == pid_ || (r < 0 && errno != EINTR);
    }
    pid_ = -1;
  }

  // Starts it again on the same port (empty: nothing persists); true once it answers PING.
  bool Restart() {
    Stop();
    if (Launch()) return true;
    ADD_FAILURE() << "redis-server did not restart on port " << port_ << "; its log:\n" << LogTail();
    Stop();
    return false;
  }

  // Makes the server stop answering clients for `ms` milliseconds (CLIENT PAUSE ms ALL); returns
  // once the server has confirmed the pause.
  void Pause(int ms) {
    std::vector<std::vector<std::string>> commands;
    if (!password_.empty()) commands.push_back({"AUTH", password_});
    commands.push_back({"CLIENT", "PAUSE", std::to_string(ms), "ALL"});
    const auto reply = redis_test_detail::RawCommands(port_, commands, 10000);
    if (!reply.has_value() || *reply != "+OK")
      ADD_FAILURE() << "CLIENT PAUSE " << ms << " ALL: " << (reply.has_value() ? *reply : "no answer");
  }

  // Runs a redis command through redis-cli (e.g. {"DBSIZE"}) and returns stdout, trimmed (raw
  // output: DBSIZE gives "3"). A redis-cli that does not finish within 30 s is killed, and the
  // test fails.
  std::string Cli(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {cli_, "-h", "127.0.0.1", "-p", std::to_string(port_)};
    if (!password_.empty()) argv.insert(argv.end(), {"-a", password_, "--no-auth-warning"});
    argv.insert(argv.end(), args.begin(), args.end());
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe: " << std::strerror(errno);
      return "";
    }
    const int err = open((dir_ / "redis-cli.err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const pid_t pid = redis_test_detail::Spawn(argv, out[1], err >= 0 ? err : out[1]);
    close(out[1]);
    if (err >= 0) close(err);
    if (pid < 0) {
      close(out[0]);
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return "";
    }
    std::string text;
    bool timed_out = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      pollfd p{out[0], POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;  // the deadline check above ends it
      char buf[4096];
      const ssize_t n = read(out[0], buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
    }
    close(out[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) ADD_FAILURE() << "redis-cli did not finish within 30 s";
    const size_t first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return "";
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
  }

 private:
  enum class Tls { kOff, kOn, kClientCertificates };

  RedisTestServer(std::string server, std::string cli, std::string password, Tls tls)
      : server_(std::move(server)), cli_(std::move(cli)), password_(std::move(password)), tls_(tls) {}

  static std::unique_ptr<RedisTestServer> Started(const std::string& password, Tls tls) {
    const std::string server = redis_test_detail::FindOnPath("redis-server");
    const std::string cli = redis_test_detail::FindOnPath("redis-cli");
    if (server.empty() || cli.empty()) return nullptr;
    std::unique_ptr<RedisTestServer> redis(new RedisTestServer(server, cli, password, tls));
    if (tls != Tls::kOff) {
      MakeCertificates(redis->dir_);
      if (::testing::Test::HasFatalFailure()) return nullptr;
    }
    // A port found free can be taken before redis-server binds it: then it exits, and other
    // ports are tried.
    for (int attempt = 0; attempt < 5; ++attempt) {
      redis->port_ = redis_test_detail::FreeLoopbackPort();
      redis->tls_port_ = tls == Tls::kOff ? -1 : redis_test_detail::FreeLoopbackPort();
      const bool ports = redis->port_ > 0 && (tls == Tls::kOff || (redis->tls_port_ > 0 && redis->tls_port_ != redis->port_));
      if (ports && redis->Launch()) return redis;
      redis->Stop();
    }
    ADD_FAILURE() << "redis-server did not start (5 ports tried); its log:\n" << redis->LogTail();
    return nullptr;
  }

  // Starts the server on port_ and polls PING (up to 2000 times, 10 ms apart); false when it
  // exits first or never answers.
  bool Launch() {
    // "-::1": IPv6 loopback where the host has it (Redis skips it where not).
    std::vector<std::string> argv = {server_,       "--port",     std::to_string(port_), "--bind",
                                     "127.0.0.1",   "-::1",       "--save",              "",
                                     "--appendonly", "no",        "--dir",               dir_.path(),
                                     "--logfile",   dir_ / "redis.log", "--daemonize",   "no"};
    if (!password_.empty()) argv.insert(argv.end(), {"--requirepass", password_});
    if (tls_ != Tls::kOff)
      argv.insert(argv.end(), {"--tls-port", std::to_string(tls_port_), "--tls-cert-file", dir_ / "server.pem",
                               "--tls-key-file", dir_ / "server.key", "--tls-ca-cert-file", dir_ / "ca.pem",
                               "--tls-auth-clients", tls_ == Tls::kClientCertificates ? "yes" : "no"});
    const int log = open((dir_ / "redis.out").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) return false;
    pid_ = redis_test_detail::Spawn(argv, log, log);
    close(log);
    if (pid_ < 0) return false;
    for (int attempt = 0; attempt < 2000; ++attempt) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: the port was taken, or a bad option
        pid_ = -1;
        return false;
      }
      if (Ping()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  bool Ping() const {
    std::vector<std::vector<std::string>> commands;
    if (!password_.empty()) commands.push_back({"AUTH", password_});
    commands.push_back({"PING"});
    const auto reply = redis_test_detail::RawCommands(port_, commands, 1000);
    return reply.has_value() && *reply == "+PONG";
  }

  std::string LogTail() const {
    std::string text;
    for (const char* name : {"redis.out", "redis.log"}) {
      std::ifstream in(dir_ / name);
      std::stringstream s;
      s << in.rdbuf();
      text += s.str();
    }
    return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
  }

  std::string server_;
  std::string cli_;
  std::string password_;
  Tls tls_;
  TempDir dir_;
  int port_ = -1;
  int tls_port_ = -1;
  pid_t pid_ = -1;
};

}  // namespace bpt::testing
