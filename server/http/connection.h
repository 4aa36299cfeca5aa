// One accepted TCP connection, plain or TLS: its requests read in turn (head, then body), each
// answered through an Exchange, with every limit and timeout of HttpServerOptions.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <memory>

#include "connection_registry.h"
#include "http_server.h"

namespace bpt::server::http {

// What every connection of one server shares; outlives them all.
struct ConnectionContext {
  HttpServerOptions options;
  Handler* handler;
  std::unique_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
  ConnectionRegistry connections;
};

// `socket` is bound to the connection's own strand. The connection is not started (nor counted).
std::shared_ptr<Connection> MakeConnection(boost::asio::ip::tcp::socket socket, ConnectionContext& context);

}  // namespace bpt::server::http
