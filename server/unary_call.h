// A unary method served over the generic API: the call reads its one request itself, parses it
// (request_parsing.h), and answers with the handler's response or error, counting the error.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/generic/async_generic_service.h>

#include <functional>
#include <memory>

#include "status.h"
#include "metrics.h"

namespace bpt::server {

class UnaryCall final : public grpc::ServerGenericBidiReactor {
 public:
  // Ends the call: with the response when OK. Once, from any thread.
  using Done = std::function<void(const Status&)>;

  // For a call already admitted. The handler runs on the gRPC thread that read the request, so
  // it must be quick (no tokenizing).
  template <typename Request, typename Response>
  static UnaryCall* Start(grpc::CallbackServerContext* context, Metrics* metrics,
                          std::function<Status(const Request&, Response*)> handler) {
    return StartAsync<Request, Response>(context, metrics,
                                         [handler = std::move(handler)](const Request& q, Response* a, Done done) {
                                           done(handler(q, a));
                                         });
  }
  // The handler hands the work on (e.g. to the tokenizer pool) and calls done when it ends; the
  // request and response stay alive until then.
  template <typename Request, typename Response>
  static UnaryCall* StartAsync(grpc::CallbackServerContext* context, Metrics* metrics,
                               std::function<void(const Request&, Response*, Done)> handler) {
    return new UnaryCall(context, metrics, std::make_unique<Request>(), std::make_unique<Response>(),
                         [handler = std::move(handler)](const google::protobuf::Message& request,
                                                        google::protobuf::Message* response, Done done) {
                           handler(static_cast<const Request&>(request), static_cast<Response*>(response),
                                   std::move(done));
                         });
  }

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  using Handler = std::function<void(const google::protobuf::Message&, google::protobuf::Message*, Done)>;
  UnaryCall(grpc::CallbackServerContext* context, Metrics* metrics, std::unique_ptr<google::protobuf::Message> request,
            std::unique_ptr<google::protobuf::Message> response, Handler handler);
  void Fail(const grpc::Status& status);
  void Answer(const Status& handled);

  grpc::CallbackServerContext* const context_;
  Metrics* const metrics_;
  const std::unique_ptr<google::protobuf::Message> request_;
  const std::unique_ptr<google::protobuf::Message> response_;
  const Handler handler_;
  grpc::ByteBuffer request_bytes_;
  grpc::ByteBuffer response_bytes_;
};

}  // namespace bpt::server
