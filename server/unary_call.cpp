#include "unary_call.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include "grpc_status.h"
#include "request_parsing.h"

namespace bpt::server {

UnaryCall::UnaryCall(grpc::CallbackServerContext* context, Metrics* metrics,
                     std::unique_ptr<google::protobuf::Message> request,
                     std::unique_ptr<google::protobuf::Message> response, Handler handler)
    : context_(context),
      metrics_(metrics),
      request_(std::move(request)),
      response_(std::move(response)),
      handler_(std::move(handler)) {
  StartRead(&request_bytes_);
}

void UnaryCall::OnReadDone(bool ok) {
  if (!ok) {
    Fail(ToGrpcStatus(context_->IsCancelled()
                          ? Cancelled("cancelled by the client")
                          : InvalidArgument("the call carried no " + request_->GetDescriptor()->full_name())));
    return;
  }
  const Status parsed = ParseRequest(&request_bytes_, request_.get());
  request_bytes_.Clear();
  if (!parsed.ok()) {
    Answer(parsed);
    return;
  }
  handler_(*request_, response_.get(), [this](const Status& handled) { Answer(handled); });
}

void UnaryCall::Answer(const Status& handled) {
  if (!handled.ok()) {
    Fail(ToGrpcStatus(handled));
    return;
  }
  bool own_buffer = false;
  const grpc::Status serialized =
      grpc::SerializationTraits<google::protobuf::Message>::Serialize(*response_, &response_bytes_, &own_buffer);
  if (!serialized.ok()) {
    Fail(serialized);
    return;
  }
  StartWriteAndFinish(&response_bytes_, grpc::WriteOptions(), grpc::Status::OK);
}

void UnaryCall::Fail(const grpc::Status& status) {
  if (metrics_ != nullptr) metrics_->RecordError(status.error_code());
  Finish(status);
}

}  // namespace bpt::server
