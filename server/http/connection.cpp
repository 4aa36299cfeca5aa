#include "connection.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "connection_exchange.h"

namespace bpt::server::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using Headers = std::vector<std::pair<std::string, std::string>>;

// After the last response on a connection: how long to wait for the peer to close. Until then
// whatever it still sends (a body that was refused unread) is read and thrown away: closing a
// socket with unread bytes makes the kernel send a reset, which can destroy the response in the
// peer's receive buffer before the peer reads it. A TLS peer is owed close_notify in that time.
constexpr std::chrono::seconds kLingerTimeout{5};

// How much one read takes while no request is being parsed: a watch for the peer going away
// while a response is pending, the first bytes of a next keep-alive request, bytes thrown away
// while lingering.
constexpr size_t kReadChunkBytes = 4096;

// The most Beast's parser reads at once. Beast 1.74 bounds neither a chunk's extensions nor a
// chunked body's trailer (header_limit is for the head, body_limit counts chunk data alone), and
// holds each whole in the read buffer until its CRLF: only a cap on that buffer keeps a peer
// sending `1;x=` and endless bytes from growing it until body_timeout. A head under the limit
// plus one read fits, so a head too large is still told apart (431) from this (413).
constexpr size_t kParserReadBytes = 64 * 1024;

// Keep-alive probes: a peer that vanished without a FIN or a reset (a partition, a NAT or load
// balancer that dropped the flow) is otherwise never seen while a response is being made, since
// nothing is written then and the watching read waits forever; its request would run to the
// end. With these it is taken as gone (its request cancelled) about 90 s after it last sent.
constexpr int kKeepAliveIdleSeconds = 60;
constexpr int kKeepAliveIntervalSeconds = 10;
constexpr int kKeepAliveProbes = 3;

// The transport's own body for a Handler that threw: it cannot be asked for one in the API's
// shape, having just failed, so this one is that shape written out.
constexpr std::string_view kInternalErrorBody =
    R"({"error":{"message":"internal error","type":"server_error","param":null,"code":null}})";

size_t HeaderLimit(const HttpServerOptions& options) {
  return std::min<size_t>(options.max_header_bytes, std::numeric_limits<std::uint32_t>::max());
}

const boost::system::error_category& HttpParseErrors() {
  return bhttp::make_error_code(bhttp::error::bad_method).category();
}

bool IsTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsFieldValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// A Handler's extra header that can go out as it is. The framing fields are the transport's
// alone: a second Content-Length or Connection would let the peer read the stream differently.
bool IsSendableExtraHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name)
    if (!IsTokenChar(c)) return false;
  for (std::string_view framing : {"content-length", "transfer-encoding", "connection"})
    if (beast::iequals(name, framing)) return false;
  return IsFieldValue(value);
}

std::string HttpDate() {
  const std::time_t now = std::time(nullptr);
  std::tm utc;
  gmtime_r(&now, &utc);
  char text[64];
  const size_t n = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return std::string(text, n);
}

// The status line and header fields through the blank line. `framing` is the Content-Length or
// Transfer-Encoding field, or empty for an HTTP/1.0 stream that the connection's close ends.
std::string FormatHead(unsigned version, int status, std::string_view content_type, const Headers& headers,
                       std::string_view framing, bool keep_alive) {
  // Only a final status is a response the peer can read; anything else is a Handler's bug.
  if (status < 200 || status > 599) status = 500;
  std::string head = version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  head += std::to_string(status);
  head += ' ';
  const bhttp::status known = bhttp::int_to_status(static_cast<unsigned>(status));
  if (known != bhttp::status::unknown) head += bhttp::obsolete_reason(known);
  head += "\r\nDate: " + HttpDate() + "\r\n";
  if (!content_type.empty() && IsFieldValue(content_type)) {
    head += "Content-Type: ";
    head += content_type;
    head += "\r\n";
  }
  for (const auto& [name, value] : headers) {
    if (!IsSendableExtraHeader(name, value)) continue;
    head += name + ": " + value + "\r\n";
  }
  if (!framing.empty()) {
    head += framing;
    head += "\r\n";
  }
  if (!keep_alive)
    head += "Connection: close\r\n";
  else if (version == 10)
    head += "Connection: keep-alive\r\n";
  head += "\r\n";
  return head;
}

std::string Chunk(std::string_view data) {
  char size[2 * sizeof(size_t)];
  const auto end = std::to_chars(size, size + sizeof size, data.size(), 16).ptr;
  std::string chunk(size, end);
  chunk += "\r\n";
  chunk += data;
  chunk += "\r\n";
  return chunk;
}

RequestHead MakeHead(const bhttp::request_parser<bhttp::string_body>& parser) {
  const auto& request = parser.get();
  RequestHead head;
  head.method = std::string(request.method_string());
  const std::string_view target = request.target();
  head.path = std::string(target.substr(0, target.find('?')));
  for (const auto& field : request) {
    std::string name(field.name_string());
    for (char& c : name)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    head.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  if (const auto length = parser.content_length()) head.content_length = *length;
  head.has_body = parser.chunked() || head.content_length.value_or(0) > 0;
  return head;
}

template <class Stream>
class Session final : public Connection,
                      public ExchangeConnection,
                      public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  template <class... StreamArgs>
  explicit Session(ConnectionContext& context, StreamArgs&&... stream_args)
      : context_(context),
        options_(context.options),
        stream_(std::forward<StreamArgs>(stream_args)...),
        executor_(stream_.get_executor()),
        read_deadline_(executor_),
        write_deadline_(executor_),
        buffer_(HeaderLimit(context.options) + kParserReadBytes) {}

  void Start() override { net::post(executor_, [self = this->shared_from_this()] { self->Begin(); }); }
  void Stop() override { net::post(executor_, [self = this->shared_from_this()] { self->Close(); }); }
  void Post(ExchangeOp op) override {
    net::post(executor_, [self = this->shared_from_this(), op = std::move(op)]() mutable { self->Apply(std::move(op)); });
  }

 private:
  enum class Phase {
    kHandshake,  // TLS, within the first request's header_timeout
    kHead,       // reading a request's head
    kBody,       // reading its body
    kAnswering,  // the request is read; its response is being made or sent; reads only watch the peer
    kIdle,       // keep-alive: waiting for the first byte of a next request
    kLingering,  // the last response is sent; waiting for the peer to close
    kClosed,
  };

  tcp::socket& Socket() { return beast::get_lowest_layer(stream_).socket(); }

  void Begin() {
    // The server may have stopped it between its registration and its start.
    if (phase_ == Phase::kClosed) return;
    error_code ignored;
    // Each streamed chunk (an SSE event) must leave at once, not wait for more to coalesce.
    Socket().set_option(tcp::no_delay(true), ignored);
    Socket().set_option(net::socket_base::keep_alive(true), ignored);
    SetTcpOption(TCP_KEEPIDLE, kKeepAliveIdleSeconds);
    SetTcpOption(TCP_KEEPINTVL, kKeepAliveIntervalSeconds);
    SetTcpOption(TCP_KEEPCNT, kKeepAliveProbes);
    ArmReadDeadline(options_.header_timeout);
    if constexpr (kTls) {
      phase_ = Phase::kHandshake;
      read_pending_ = true;
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](error_code ec) { self->OnHandshake(ec); });
    } else {
      ReadHead();
    }
  }

  // Asio has no portable option for these; one that fails leaves the system's default.
  void SetTcpOption(int name, int value) {
    ::setsockopt(Socket().native_handle(), IPPROTO_TCP, name, &value, sizeof value);
  }

  void OnHandshake(error_code ec) {
    if (!ReadCompleted() || phase_ != Phase::kHandshake) return;
    if (ec) return Close();
    ReadHead();
  }

  // The caller armed the head's deadline.
  void ReadHead() {
    phase_ = Phase::kHead;
    version_ = 11;
    keep_alive_ = false;
    head_request_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(HeaderLimit(options_)));
    // Unlimited while the Handler judges the head (an unset limit would do, but Beast 1.74 takes
    // every Content-Length for over an unset one); the real limit is set before the body is read.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    read_pending_ = true;
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](error_code ec, size_t) { self->OnHeadRead(ec); });
  }

  void OnHeadRead(error_code ec) {
    if (!ReadCompleted() || phase_ != Phase::kHead) return;
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return Close();
    if (ec == bhttp::error::header_limit)
      return Refuse(431, nullptr, "the request head is over the limit of " + std::to_string(options_.max_header_bytes) + " bytes");
    if (ec.category() == HttpParseErrors()) return Refuse(400, nullptr, "malformed HTTP request: " + ec.message());
    if (ec) return Close();

    const auto& request = parser_->get();
    head_ = MakeHead(*parser_);
    if (request.version() / 10 != 1)
      return Refuse(400, &head_, "HTTP version " + std::to_string(request.version() / 10) + "." +
                                     std::to_string(request.version() % 10) + " is not supported");
    version_ = request.version() == 10 ? 10 : 11;
    keep_alive_ = request.keep_alive();
    head_request_ = request.method() == bhttp::verb::head;
    // Beast reads a request whose last coding is not chunked as having no body: its body would
    // then be parsed as the next request.
    if (request.count(bhttp::field::transfer_encoding) > 0 && !parser_->chunked())
      return Refuse(400, &head_, "a Transfer-Encoding other than chunked is not supported");

    std::optional<Response> refusal;
    try {
      refusal = context_.handler->OnHead(head_);
    } catch (...) {
      StopReading();
      return AnswerHandlerFailure();
    }
    if (refusal) {
      StopReading();
      // An announced body stays unread, so it must not be taken for the next request.
      return SendResponse(std::move(*refusal), keep_alive_ && !head_.has_body);
    }
    if (head_.content_length.value_or(0) > options_.max_body_bytes)
      return Refuse(413, &head_, "the request body of " + std::to_string(*head_.content_length) +
                                     " bytes is over the limit of " + std::to_string(options_.max_body_bytes) + " bytes");
    if (!head_.has_body) return Dispatch(std::string());

    phase_ = Phase::kBody;
    ArmReadDeadline(options_.body_timeout);
    if (version_ == 11 && beast::iequals(request[bhttp::field::expect], "100-continue"))
      Send("HTTP/1.1 100 Continue\r\n\r\n");
    parser_->body_limit(options_.max_body_bytes);
    read_pending_ = true;
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](error_code ec, size_t) { self->OnBodyRead(ec); });
  }

  void OnBodyRead(error_code ec) {
    if (!ReadCompleted() || phase_ != Phase::kBody) return;
    if (ec == bhttp::error::body_limit)
      return Refuse(413, &head_, "the request body is over the limit of " + std::to_string(options_.max_body_bytes) + " bytes");
    if (ec == bhttp::error::buffer_overflow)
      return Refuse(413, &head_, "a chunk header or the trailer of the request body is over the limit of " +
                                     std::to_string(buffer_.max_size()) + " bytes");
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return Close();
    if (ec.category() == HttpParseErrors()) return Refuse(400, &head_, "malformed HTTP request body: " + ec.message());
    if (ec) return Close();
    Dispatch(std::move(parser_->get().body()));
  }

  void Dispatch(std::string body) {
    StopReading();
    parser_.reset();
    close_after_response_ = !keep_alive_;
    exchange_ = std::make_shared<ConnectionExchange>(this->shared_from_this());
    ++context_.unsent_responses;
    // Bytes already here (a pipelined next request, or only a stray CRLF after the body) are
    // not parsed until this response is sent, and a read for EOF would have to get past them:
    // the peer is not watched, so its going is seen only when a write to it fails.
    if (buffer_.size() == 0) Watch();
    try {
      context_.handler->OnRequest(head_, std::move(body), exchange_);
    } catch (...) {
      AnswerHandlerFailure();
    }
  }

  // A Handler that threw (its bug) must not end the process: the request gets the transport's
  // own 500 and the connection closes, so nothing the Handler may still send for the exchange
  // can follow on it. An exchange already handed over is lost, so that whatever the Handler
  // started for it (OnClose) is stopped.
  void AnswerHandlerFailure() {
    if (exchange_ != nullptr) LoseExchange();
    SendResponse({500, "application/json", std::string(kInternalErrorBody), {}}, false);
  }

  // A read that sees the peer close (EOF or an error: the client is gone, the exchange is
  // closed) while a response is pending or the connection is idle; a TLS peer needs a real
  // read, not a peek. Data ends the watch: it is the start of the next request (from then on,
  // as with bytes already there at Dispatch, the peer's going is seen only by a write). A peer
  // that only shut down its sending side after its request is taken as gone too: its EOF reads
  // the same as a close, and telling them apart would take a write, which the watch avoids.
  void Watch() {
    // A full buffer is a next request to parse, not to watch past.
    const size_t room = std::min(kReadChunkBytes, buffer_.max_size() - buffer_.size());
    if (room == 0) return;
    read_pending_ = true;
    stream_.async_read_some(buffer_.prepare(room), [self = this->shared_from_this()](error_code ec, size_t n) {
      self->OnWatchRead(ec, n);
    });
  }

  void OnWatchRead(error_code ec, size_t n) {
    if (!ReadCompleted()) return;
    if (ec) return Close();
    buffer_.commit(n);
    if (phase_ == Phase::kIdle) {
      ArmReadDeadline(options_.header_timeout);
      ReadHead();
    }
  }

  // Every read's completion but the lingering one's starts here: false when the connection has
  // closed meanwhile or gone on to linger (which cancelled this read and starts now).
  bool ReadCompleted() {
    read_pending_ = false;
    if (phase_ == Phase::kLingering) StartLingering();
    return phase_ != Phase::kClosed && phase_ != Phase::kLingering;
  }

  void StopReading() {
    phase_ = Phase::kAnswering;
    DisarmReadDeadline();
  }

  // Reads that a timeout ends; the handler of the cancelled read sees the phase moved on.
  void CancelRead() {
    if (!read_pending_) return;
    error_code ignored;
    Socket().cancel(ignored);
  }

  // The transport's own refusal; the connection closes after it.
  void Refuse(int status, const RequestHead* head, const std::string& message) {
    CancelRead();
    StopReading();
    Response refusal;
    try {
      refusal = context_.handler->TransportError(head, status, message);
    } catch (...) {
      return AnswerHandlerFailure();
    }
    SendResponse(std::move(refusal), false);
  }

  void SendResponse(Response response, bool keep_alive) {
    close_after_response_ = !keep_alive;
    std::string bytes = FormatHead(version_, response.status, response.content_type, response.headers,
                                   "Content-Length: " + std::to_string(response.body.size()), keep_alive);
    if (!head_request_) bytes += response.body;
    Send(std::move(bytes));
    ResponseComplete();
  }

  void Apply(ExchangeOp op) {
    // Null once the connection closed: the op comes too late.
    if (exchange_ == nullptr) return;
    if (auto* response = std::get_if<Response>(&op)) return SendResponse(std::move(*response), keep_alive_);
    if (auto* start = std::get_if<StreamStart>(&op)) {
      // HTTP/1.0 has no chunked coding: the stream ends with the connection.
      if (version_ == 10) close_after_response_ = true;
      return Send(FormatHead(version_, start->status, start->content_type, start->headers,
                             version_ == 11 ? "Transfer-Encoding: chunked" : "", !close_after_response_));
    }
    if (auto* chunk = std::get_if<StreamChunk>(&op)) {
      if (!head_request_) Send(version_ == 11 ? Chunk(chunk->data) : std::move(chunk->data));
      return;
    }
    if (version_ == 11 && !head_request_) Send("0\r\n\r\n");
    ResponseComplete();
  }

  void Send(std::string bytes) {
    queued_writes_.push_back(std::move(bytes));
    if (!write_pending_) WriteQueued();
  }

  // Everything queued goes out as one batch; the next batch waits for it.
  void WriteQueued() {
    writes_in_flight_ = std::move(queued_writes_);
    queued_writes_.clear();
    std::vector<net::const_buffer> buffers;
    buffers.reserve(writes_in_flight_.size());
    for (const std::string& bytes : writes_in_flight_) buffers.emplace_back(net::buffer(bytes));
    unwritten_.emplace(std::move(buffers));
    write_pending_ = true;
    WriteSome();
  }

  // A batch is written a part at a time, the deadline re-armed for each, so idle_timeout bounds
  // how long the peer takes none of it, not how long the whole takes: a large body to a slow
  // but steady reader must not be cut.
  void WriteSome() {
    ArmWriteDeadline();
    stream_.async_write_some(*unwritten_, [self = this->shared_from_this()](error_code ec, size_t n) {
      self->OnWriteSome(ec, n);
    });
  }

  void OnWriteSome(error_code ec, size_t n) {
    if (phase_ == Phase::kClosed) {
      write_pending_ = false;
      return;
    }
    if (ec) {
      write_pending_ = false;
      return Close();
    }
    unwritten_->consume(n);
    if (net::buffer_size(*unwritten_) > 0) return WriteSome();
    write_pending_ = false;
    unwritten_.reset();
    writes_in_flight_.clear();
    if (!queued_writes_.empty()) return WriteQueued();
    DisarmWriteDeadline();
    if (response_complete_) ResponseSent();
  }

  // The last byte of the response is queued.
  void ResponseComplete() {
    response_complete_ = true;
    if (!write_pending_) ResponseSent();
  }

  void ResponseSent() {
    response_complete_ = false;
    if (exchange_ != nullptr) {
      std::exchange(exchange_, nullptr)->Finished();
      --context_.unsent_responses;
    }
    if (close_after_response_) return Linger();
    phase_ = Phase::kIdle;
    if (buffer_.size() > 0) {
      ArmReadDeadline(options_.header_timeout);
      return ReadHead();
    }
    ArmReadDeadline(options_.idle_timeout);
    // A watch still pending from the response goes on as the wait for the next request.
    if (!read_pending_) Watch();
  }

  void Linger() {
    phase_ = Phase::kLingering;
    ArmReadDeadline(kLingerTimeout);
    if (read_pending_)
      CancelRead();
    else
      StartLingering();
  }

  void StartLingering() {
    read_pending_ = true;
    if constexpr (kTls) {
      stream_.async_shutdown([self = this->shared_from_this()](error_code) {
        self->read_pending_ = false;
        self->Close();
      });
    } else {
      error_code ignored;
      Socket().shutdown(tcp::socket::shutdown_send, ignored);
      DiscardRead();
    }
  }

  void DiscardRead() {
    read_pending_ = true;
    Socket().async_read_some(net::buffer(discarded_), [self = this->shared_from_this()](error_code ec, size_t) {
      self->read_pending_ = false;
      if (self->phase_ == Phase::kClosed) return;
      if (ec) return self->Close();
      self->DiscardRead();
    });
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    DisarmReadDeadline();
    DisarmWriteDeadline();
    error_code ignored;
    Socket().close(ignored);
    context_.connections.Remove(this);
    if (exchange_ != nullptr) LoseExchange();
  }

  // The exchange ends unanswered on this connection: its OnClose runs, and sees it counted off.
  void LoseExchange() {
    --context_.unsent_responses;
    std::exchange(exchange_, nullptr)->ConnectionLost();
  }

  // One timer per direction; a generation number tells a wait that fired for a deadline since
  // replaced (its handler already queued) from the current one.
  void ArmReadDeadline(std::chrono::steady_clock::duration timeout) {
    const uint64_t generation = ++read_deadline_generation_;
    read_deadline_.expires_after(timeout);
    read_deadline_.async_wait([self = this->shared_from_this(), generation](error_code ec) {
      if (!ec && generation == self->read_deadline_generation_) self->OnReadDeadline();
    });
  }

  void DisarmReadDeadline() {
    ++read_deadline_generation_;
    read_deadline_.cancel();
  }

  void OnReadDeadline() {
    if (phase_ == Phase::kHead && buffer_.size() > 0)
      return Refuse(408, nullptr, "the request head did not arrive within " +
                                      std::to_string(options_.header_timeout.count()) + " ms");
    if (phase_ == Phase::kBody)
      return Refuse(408, &head_, "the request body did not arrive within " +
                                     std::to_string(options_.body_timeout.count()) + " ms");
    // Nothing of a request came (a new connection, an idle keep-alive one) or the peer never
    // closed after the last response: no one to answer.
    Close();
  }

  // A peer that takes none of a write for idle_timeout is gone.
  void ArmWriteDeadline() {
    const uint64_t generation = ++write_deadline_generation_;
    write_deadline_.expires_after(options_.idle_timeout);
    write_deadline_.async_wait([self = this->shared_from_this(), generation](error_code ec) {
      if (!ec && generation == self->write_deadline_generation_) self->Close();
    });
  }

  void DisarmWriteDeadline() {
    ++write_deadline_generation_;
    write_deadline_.cancel();
  }

  ConnectionContext& context_;
  const HttpServerOptions& options_;
  Stream stream_;
  const net::any_io_executor executor_;  // the connection's strand
  net::steady_timer read_deadline_;
  net::steady_timer write_deadline_;
  uint64_t read_deadline_generation_ = 0;
  uint64_t write_deadline_generation_ = 0;

  Phase phase_ = Phase::kHead;
  bool read_pending_ = false;
  // Bytes read and not yet parsed: a partial head, or the start of a pipelined next request.
  // Capped (see kParserReadBytes).
  beast::flat_buffer buffer_;
  // What lingering reads, only to throw it away: buffer_ may be full of an unparsed request.
  std::array<char, kReadChunkBytes> discarded_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;

  // The request being answered.
  RequestHead head_;
  unsigned version_ = 11;  // 10 or 11
  bool keep_alive_ = false;
  bool head_request_ = false;  // HEAD: the response's head alone
  std::shared_ptr<ConnectionExchange> exchange_;  // null for the transport's own responses
  bool close_after_response_ = false;
  bool response_complete_ = false;  // its last byte is queued

  std::vector<std::string> queued_writes_;
  std::vector<std::string> writes_in_flight_;
  std::optional<beast::buffers_suffix<std::vector<net::const_buffer>>> unwritten_;  // of writes_in_flight_
  bool write_pending_ = false;
};

}  // namespace

std::shared_ptr<Connection> MakeConnection(tcp::socket socket, ConnectionContext& context) {
  if (context.tls != nullptr) return std::make_shared<Session<TlsStream>>(context, std::move(socket), *context.tls);
  return std::make_shared<Session<PlainStream>>(context, std::move(socket));
}

}  // namespace bpt::server::http
