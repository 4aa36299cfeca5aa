#include "tls_context.h"

namespace bpt::server::http {
namespace {

namespace ssl = boost::asio::ssl;

constexpr unsigned char kSessionIdContext[] = "bptserve";

Status PemError(const char* option, const std::string& path, const boost::system::error_code& ec) {
  return InvalidArgument(std::string(option) + " '" + path + "': " + ec.message());
}

}  // namespace

StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(const HttpServerOptions& options) {
  if (options.tls_cert.empty() && options.tls_key.empty()) {
    if (!options.tls_client_ca.empty()) return InvalidArgument("tls_client_ca needs tls_cert and tls_key");
    return std::unique_ptr<ssl::context>();
  }
  if (options.tls_cert.empty() || options.tls_key.empty())
    return InvalidArgument("tls_cert and tls_key must be given together");

  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                       ec);
  if (ec) return Internal("TLS options: " + ec.message());
  // A client's renegotiation is a handshake's work for the server on demand, and nothing here needs it.
  SSL_CTX_set_options(context->native_handle(), SSL_OP_NO_RENEGOTIATION);
  if (context->use_certificate_chain_file(options.tls_cert, ec); ec)
    return PemError("tls_cert", options.tls_cert, ec);
  if (context->use_private_key_file(options.tls_key, ssl::context::pem, ec); ec)
    return PemError("tls_key", options.tls_key, ec);
  if (SSL_CTX_check_private_key(context->native_handle()) != 1)
    return InvalidArgument("tls_key '" + options.tls_key + "' is not the key of tls_cert '" + options.tls_cert + "'");
  if (!options.tls_client_ca.empty()) {
    if (context->load_verify_file(options.tls_client_ca, ec); ec)
      return PemError("tls_client_ca", options.tls_client_ca, ec);
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    if (ec) return Internal("TLS client verification: " + ec.message());
    // A session resumed under verify_peer must be known to come from this context (whose
    // client CA verified it); without an id for it OpenSSL fails the resuming handshake
    // (SESSION_ID_CONTEXT_UNINITIALIZED) instead of resuming, so a TLS 1.2 client that reconnects
    // with its session is refused.
    if (SSL_CTX_set_session_id_context(context->native_handle(), kSessionIdContext,
                                       sizeof kSessionIdContext - 1) != 1)
      return Internal("TLS session id context");
  }
  return context;
}

}  // namespace bpt::server::http
