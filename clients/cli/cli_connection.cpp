#include "cli_connection.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

namespace bpt::cli {

std::string ReadAll(std::istream& in) {
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<grpc::Channel> MakeChannel(const Connection& c) {
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!c.tls_ca.empty()) {
    std::ifstream in(c.tls_ca);
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadAll(in);
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // Long prefills send nothing for minutes; keepalive pings keep the connection known alive.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  return grpc::CreateCustomChannel(c.server, creds, args);
}

void Prepare(const Connection& c, grpc::ClientContext* context) {
  if (!c.api_key_file.empty()) {
    std::ifstream in(c.api_key_file);
    std::string key;
    std::getline(in, key);
    context->AddMetadata("authorization", "Bearer " + key);
  }
  if (c.timeout_s > 0)
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(c.timeout_s * 1000)));
}

int Fail(const grpc::Status& s) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  std::cerr << "error: " << (code >= 0 && code <= 16 ? names[code] : "UNKNOWN") << ": " << s.error_message() << "\n";
  return code;
}

}  // namespace bpt::cli
