// The Exchange a connection hands to the Handler: a state machine (awaiting a response,
// streaming, ended) behind a mutex, so the engine worker's thread and the io threads can call it
// at once, and a link to the connection that carries its bytes. The link is cut when the response
// is sent or the connection goes: from then on every call does nothing, and the Exchange may
// outlive the connection and the server (the Handler keeps it as long as it likes).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "http_server.h"

namespace bpt::server::http {

struct StreamStart {
  int status;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
};
struct StreamChunk {
  std::string data;
};
struct StreamEnd {};
// One call on the Exchange, as the connection applies it.
using ExchangeOp = std::variant<Response, StreamStart, StreamChunk, StreamEnd>;

// The connection side of an Exchange.
class ExchangeConnection {
 public:
  // From any thread, with the exchange's lock held (so ops arrive in the order they were made);
  // the connection applies each later on its own strand.
  virtual void Post(ExchangeOp op) = 0;

 protected:
  ~ExchangeConnection() = default;
};

class ConnectionExchange final : public Exchange {
 public:
  explicit ConnectionExchange(std::shared_ptr<ExchangeConnection> connection)
      : connection_(std::move(connection)) {}

  void Respond(Response response) override;
  void StartStream(int status, std::string content_type,
                   std::vector<std::pair<std::string, std::string>> headers) override;
  void Write(std::string data) override;
  void EndStream() override;
  void SetOnClose(std::function<void()> on_close) override;
  bool closed() const override;

  // Called by the connection, on its strand: the last byte of the response was sent (OnClose
  // will never run), or the connection went before that (OnClose runs now).
  void Finished();
  void ConnectionLost();

 private:
  enum class State { kAwaitingResponse, kStreaming, kEnded };

  // Posts `op` if the exchange is in `from` and the connection is still there; then moves to `to`.
  void Apply(State from, State to, ExchangeOp op);

  mutable std::mutex mutex_;
  std::shared_ptr<ExchangeConnection> connection_;  // null once finished or lost
  State state_ = State::kAwaitingResponse;
  bool closed_ = false;  // the connection went before the response was sent
  std::function<void()> on_close_;
};

}  // namespace bpt::server::http
