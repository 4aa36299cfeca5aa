// Requests arrive as bytes and are parsed here rather than by gRPC, which refuses a string field
// holding invalid UTF-8, or bytes that are no message of the type, with a bare UNIMPLEMENTED
// before any handler runs (so nothing would name the field or count the error).
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include "status.h"

namespace bpt::server {

// Parses `bytes` into `out`. INVALID_ARGUMENT naming the field's path (e.g. `stopping.stop[1]`)
// when any string field, at any depth, is not UTF-8; or saying the bytes are not a message of
// out's type. The bytes are read in place: a large prompt is not copied to be checked.
Status ParseRequest(grpc::ByteBuffer* bytes, google::protobuf::Message* out);

}  // namespace bpt::server
