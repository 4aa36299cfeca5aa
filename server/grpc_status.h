// The one place where the engine's Status becomes a grpc::Status.
#pragma once

#include <grpcpp/support/status.h>

#include "status.h"

namespace bpt::server {

grpc::Status ToGrpcStatus(const Status& status);

}  // namespace bpt::server
