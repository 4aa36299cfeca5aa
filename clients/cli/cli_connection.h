// How bptserve-cli reaches the server: the address, TLS and API key flags every subcommand shares,
// the channel they make, and what each call carries (the key, the deadline).
#pragma once

#include <grpcpp/grpcpp.h>

#include <istream>
#include <memory>
#include <string>

namespace bpt::cli {

struct Connection {
  std::string server = "localhost:50051";
  std::string tls_ca;
  std::string api_key_file;
  double timeout_s = 0;  // 0: none
};

std::string ReadAll(std::istream& in);
std::shared_ptr<grpc::Channel> MakeChannel(const Connection& c);
// The API key and the deadline (counted from now) on one call's context.
void Prepare(const Connection& c, grpc::ClientContext* context);
// Prints the server's code and message; the code, for the exit status.
int Fail(const grpc::Status& s);

}  // namespace bpt::cli
