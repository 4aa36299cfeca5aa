// The server's TLS context from the PEM options, as the gRPC server reads them: tls_cert and
// tls_key turn TLS on; tls_client_ca also requires every client to present a certificate that it
// signed (mTLS).
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <memory>

#include "http_server.h"

namespace bpt::server::http {

// Null when the options ask for plain HTTP.
StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeTlsContext(const HttpServerOptions& options);

}  // namespace bpt::server::http
