#include "connection_registry.h"

namespace bpt::server::http {

bool ConnectionRegistry::Add(const std::shared_ptr<Connection>& connection) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_ || open_.size() >= max_connections_) return false;
  open_.emplace(connection.get(), connection);
  return true;
}

void ConnectionRegistry::Remove(const Connection* connection) {
  std::lock_guard<std::mutex> lock(mutex_);
  open_.erase(connection);
}

size_t ConnectionRegistry::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return open_.size();
}

std::vector<std::shared_ptr<Connection>> ConnectionRegistry::StopAccepting() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = true;
  std::vector<std::shared_ptr<Connection>> open;
  for (const auto& [key, weak] : open_)
    if (auto connection = weak.lock()) open.push_back(std::move(connection));
  return open;
}

}  // namespace bpt::server::http
