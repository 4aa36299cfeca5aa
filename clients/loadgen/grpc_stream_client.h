// One loadgen client's Generate streams over gRPC, one at a time.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "bptserve/v1/bptserve.grpc.pb.h"
#include "stream_client.h"

namespace bptserve::loadgen {

class GrpcStreamClient final : public StreamClient {
 public:
  // api_key: sent as `authorization: Bearer <key>` when not empty.
  GrpcStreamClient(const std::shared_ptr<grpc::Channel>& channel, std::string api_key);

  // An OK stream must carry exactly one Finished message; any other status none.
  StreamResult Stream(const LoadRequest& request) override;

 private:
  std::unique_ptr<bptserve::v1::Inference::Stub> stub_;
  std::string api_key_;
};

}  // namespace bptserve::loadgen
