// grpc.reflection.v1alpha.ServerReflection (what grpcurl and grpcio-reflection use) answered from
// the generated descriptor pool. bptserve serves it itself, through the dispatcher, so that it
// can demand the API key before reading a request; gRPC's reflection plugin answers anyone.
#pragma once

#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/async_generic_service.h>

#include <set>
#include <string>
#include <vector>

#include "grpc/reflection/v1alpha/reflection.pb.h"
#include "metrics.h"

namespace bpt::server {

class ReflectionCall final : public grpc::ServerGenericBidiReactor {
 public:
  // One stream of questions, each answered in turn until the client half-closes.
  // `services`: what ListServices names.
  ReflectionCall(const std::vector<std::string>* services, Metrics* metrics);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  grpc::reflection::v1alpha::ServerReflectionResponse Answer(const grpc::reflection::v1alpha::ServerReflectionRequest& q);
  // The file and each dependency this stream has not sent yet (the protocol lets a server skip those).
  void AddFile(const google::protobuf::FileDescriptor* file, grpc::reflection::v1alpha::FileDescriptorResponse* out,
               bool requested);
  void End(const grpc::Status& status);

  const std::vector<std::string>* const services_;
  Metrics* const metrics_;
  std::set<std::string> sent_files_;
  grpc::ByteBuffer request_bytes_;
  grpc::ByteBuffer response_bytes_;
};

}  // namespace bpt::server
