// The open connections: counted against max_connections, and every one closed when the server
// stops. No connection joins once stopping began, so the list StopAccepting returns is complete.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace bpt::server::http {

// What the server holds of a connection.
class Connection {
 public:
  virtual ~Connection() = default;
  // Both from any thread; each runs on the connection's strand.
  virtual void Start() = 0;
  virtual void Stop() = 0;  // closes it at once
};

class ConnectionRegistry {
 public:
  explicit ConnectionRegistry(size_t max_connections) : max_connections_(max_connections) {}

  // False when the server is full or stopping: the caller drops the connection.
  bool Add(const std::shared_ptr<Connection>& connection);
  void Remove(const Connection* connection);
  size_t size() const;
  // Every connection still open; Add refuses all from now on.
  std::vector<std::shared_ptr<Connection>> StopAccepting();

 private:
  const size_t max_connections_;
  mutable std::mutex mutex_;
  bool stopping_ = false;
  // Weak: a connection lives while its own io operations (or its Exchange) hold it.
  std::unordered_map<const Connection*, std::weak_ptr<Connection>> open_;
};

}  // namespace bpt::server::http
