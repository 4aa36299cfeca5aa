#include "connection_exchange.h"

namespace bpt::server::http {

void ConnectionExchange::Apply(State from, State to, ExchangeOp op) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_ != from || connection_ == nullptr) return;
  state_ = to;
  connection_->Post(std::move(op));
}

void ConnectionExchange::Respond(Response response) {
  Apply(State::kAwaitingResponse, State::kEnded, std::move(response));
}

void ConnectionExchange::StartStream(int status, std::string content_type,
                                     std::vector<std::pair<std::string, std::string>> headers) {
  Apply(State::kAwaitingResponse, State::kStreaming, StreamStart{status, std::move(content_type), std::move(headers)});
}

void ConnectionExchange::Write(std::string data) {
  // An empty chunk would be the stream's last-chunk marker.
  if (data.empty()) return;
  Apply(State::kStreaming, State::kStreaming, StreamChunk{std::move(data)});
}

void ConnectionExchange::EndStream() { Apply(State::kStreaming, State::kEnded, StreamEnd{}); }

void ConnectionExchange::SetOnClose(std::function<void()> on_close) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closed_) {
      // Once the response is sent the callback can never run: keep nothing it holds alive.
      if (connection_ != nullptr) on_close_ = std::move(on_close);
      return;
    }
  }
  on_close();
}

bool ConnectionExchange::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

void ConnectionExchange::Finished() {
  std::function<void()> dropped;
  std::lock_guard<std::mutex> lock(mutex_);
  connection_.reset();
  dropped = std::move(on_close_);
}

void ConnectionExchange::ConnectionLost() {
  std::function<void()> on_close;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    connection_.reset();
    on_close = std::move(on_close_);
  }
  if (on_close) on_close();
}

}  // namespace bpt::server::http
