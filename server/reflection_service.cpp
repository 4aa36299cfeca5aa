#include "reflection_service.h"

#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include "grpc_status.h"
#include "request_parsing.h"

namespace bpt::server {

using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

ReflectionCall::ReflectionCall(const std::vector<std::string>* services, Metrics* metrics)
    : services_(services), metrics_(metrics) {
  StartRead(&request_bytes_);
}

void ReflectionCall::OnReadDone(bool ok) {
  if (!ok) {  // the client half-closed: every question was answered
    End(grpc::Status::OK);
    return;
  }
  ServerReflectionRequest request;
  const Status parsed = ParseRequest(&request_bytes_, &request);
  request_bytes_.Clear();
  if (!parsed.ok()) {
    End(ToGrpcStatus(parsed));
    return;
  }
  bool own_buffer = false;
  response_bytes_.Clear();  // the last answer is sent; the serializer writes into an empty buffer only
  const grpc::Status serialized =
      grpc::SerializationTraits<ServerReflectionResponse>::Serialize(Answer(request), &response_bytes_, &own_buffer);
  if (!serialized.ok()) {
    End(serialized);
    return;
  }
  StartWrite(&response_bytes_);
}

void ReflectionCall::OnWriteDone(bool ok) {
  if (!ok) {
    End(ToGrpcStatus(Cancelled("the client went away")));
    return;
  }
  StartRead(&request_bytes_);
}

void ReflectionCall::End(const grpc::Status& status) {
  if (!status.ok() && metrics_ != nullptr) metrics_->RecordError(status.error_code());
  Finish(status);
}

ServerReflectionResponse ReflectionCall::Answer(const ServerReflectionRequest& q) {
  const google::protobuf::DescriptorPool& pool = *google::protobuf::DescriptorPool::generated_pool();
  ServerReflectionResponse a;
  a.set_valid_host(q.host());
  *a.mutable_original_request() = q;
  // An error inside the stream, which stays open: the code and text a call would end with.
  auto error = [&](const Status& status) {
    const grpc::Status g = ToGrpcStatus(status);
    a.mutable_error_response()->set_error_code(static_cast<int32_t>(g.error_code()));
    a.mutable_error_response()->set_error_message(g.error_message());
  };
  auto not_found = [&](const std::string& what) { error(NotFound(what + " not found")); };
  switch (q.message_request_case()) {
    case ServerReflectionRequest::kListServices:
      for (const std::string& name : *services_) a.mutable_list_services_response()->add_service()->set_name(name);
      break;
    case ServerReflectionRequest::kFileByFilename:
      if (const auto* file = pool.FindFileByName(q.file_by_filename()))
        AddFile(file, a.mutable_file_descriptor_response(), true);
      else
        not_found("file '" + q.file_by_filename() + "'");
      break;
    case ServerReflectionRequest::kFileContainingSymbol:
      if (const auto* file = pool.FindFileContainingSymbol(q.file_containing_symbol()))
        AddFile(file, a.mutable_file_descriptor_response(), true);
      else
        not_found("symbol '" + q.file_containing_symbol() + "'");
      break;
    case ServerReflectionRequest::kFileContainingExtension: {
      const auto& e = q.file_containing_extension();
      const auto* type = pool.FindMessageTypeByName(e.containing_type());
      const auto* extension = type == nullptr ? nullptr : pool.FindExtensionByNumber(type, e.extension_number());
      if (extension != nullptr)
        AddFile(extension->file(), a.mutable_file_descriptor_response(), true);
      else
        not_found("extension " + std::to_string(e.extension_number()) + " of '" + e.containing_type() + "'");
      break;
    }
    case ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const auto* type = pool.FindMessageTypeByName(q.all_extension_numbers_of_type());
      if (type == nullptr) {
        not_found("type '" + q.all_extension_numbers_of_type() + "'");
        break;
      }
      std::vector<const google::protobuf::FieldDescriptor*> extensions;
      pool.FindAllExtensions(type, &extensions);
      auto* numbers = a.mutable_all_extension_numbers_response();
      numbers->set_base_type_name(type->full_name());
      for (const auto* x : extensions) numbers->add_extension_number(x->number());
      break;
    }
    case ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      error(InvalidArgument("message_request: set one of its fields"));
      break;
  }
  return a;
}

// The requested file always; its dependencies once per stream, as grpc-go's reflection does.
void ReflectionCall::AddFile(const google::protobuf::FileDescriptor* file,
                             grpc::reflection::v1alpha::FileDescriptorResponse* out, bool requested) {
  if (!sent_files_.insert(file->name()).second && !requested) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(out->add_file_descriptor_proto());
  for (int i = 0; i < file->dependency_count(); ++i) AddFile(file->dependency(i), out, false);
}

}  // namespace bpt::server
