#include "request_parsing.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace bpt::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

constexpr int kMaxNesting = 100;  // protobuf's own recursion limit

// RFC 3629 UTF-8 (no overlong forms, surrogates or code points past U+10FFFF, as protobuf's
// parser demands), fed in the pieces the message's slices hold.
class Utf8Validator {
 public:
  bool Feed(const uint8_t* p, size_t n) {
    size_t i = 0;
    while (i < n) {
      if (pending_ == 0 && n - i >= 8) {  // prompts are mostly ASCII: eight bytes at a time
        uint64_t word;
        std::memcpy(&word, p + i, 8);
        if ((word & 0x8080808080808080ull) == 0) {
          i += 8;
          continue;
        }
      }
      if (!FeedByte(p[i++])) return false;
    }
    return true;
  }
  bool Complete() const { return pending_ == 0; }

 private:
  bool FeedByte(uint8_t b) {
    if (pending_ > 0) {
      if (b < lower_ || b > upper_) return false;
      lower_ = 0x80;
      upper_ = 0xBF;
      --pending_;
      return true;
    }
    if (b < 0x80) return true;
    if (b >= 0xC2 && b <= 0xDF) {
      pending_ = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      pending_ = 2;
      if (b == 0xE0) lower_ = 0xA0;  // overlong
      if (b == 0xED) upper_ = 0x9F;  // surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      pending_ = 3;
      if (b == 0xF0) lower_ = 0x90;  // overlong
      if (b == 0xF4) upper_ = 0x8F;  // past U+10FFFF
    } else {
      return false;
    }
    return true;
  }

  int pending_ = 0;  // continuation bytes still expected
  uint8_t lower_ = 0x80, upper_ = 0xBF;  // the range the next continuation byte must be in
};

enum class Scan { kClean, kInvalidUtf8, kMalformed };

// Walks the wire format against the descriptor. Malformed bytes end the walk without a verdict:
// the parse that follows refuses them.
Scan FindInvalidUtf8(CodedInputStream& in, const Descriptor& type, const std::string& prefix, int depth,
                     std::string* path) {
  std::map<int, int> seen;  // field number: occurrences so far, the index of a repeated field's element
  while (true) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return in.BytesUntilLimit() == 0 ? Scan::kClean : Scan::kMalformed;
    const FieldDescriptor* field = type.FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag));
    const bool walk = field != nullptr &&
                      WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
                      (field->type() == FieldDescriptor::TYPE_STRING || field->type() == FieldDescriptor::TYPE_MESSAGE);
    if (!walk) {
      if (!WireFormatLite::SkipField(&in, tag)) return Scan::kMalformed;
      continue;
    }
    std::string name = prefix + field->name();
    if (field->is_repeated()) name.append("[").append(std::to_string(seen[field->number()]++)).append("]");
    uint32_t length = 0;
    if (!in.ReadVarint32(&length)) return Scan::kMalformed;
    // A length past its parent's end is malformed; a limit pushed for it would not hold.
    if (length > static_cast<uint32_t>(std::max(in.BytesUntilLimit(), 0))) return Scan::kMalformed;
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      Utf8Validator utf8;
      for (uint32_t left = length; left > 0;) {
        const void* data = nullptr;
        int size = 0;
        if (!in.GetDirectBufferPointer(&data, &size)) return Scan::kMalformed;
        const uint32_t n = std::min<uint32_t>(left, static_cast<uint32_t>(size));
        if (!utf8.Feed(static_cast<const uint8_t*>(data), n)) {
          *path = name;
          return Scan::kInvalidUtf8;
        }
        in.Skip(static_cast<int>(n));
        left -= n;
      }
      if (!utf8.Complete()) {
        *path = name;
        return Scan::kInvalidUtf8;
      }
      continue;
    }
    if (depth >= kMaxNesting) return Scan::kMalformed;
    const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
    const Scan nested = FindInvalidUtf8(in, *field->message_type(), name + ".", depth + 1, path);
    if (nested != Scan::kClean) return nested;
    in.PopLimit(limit);
  }
}

}  // namespace

Status ParseRequest(grpc::ByteBuffer* bytes, google::protobuf::Message* out) {
  const std::string not_a_message = "the request is not a valid " + out->GetDescriptor()->full_name() + " message";
  if (bytes->Length() > static_cast<size_t>(INT32_MAX)) return InvalidArgument(not_a_message);
  {
    grpc::ProtoBufferReader reader(bytes);
    CodedInputStream in(&reader);
    in.PushLimit(static_cast<int>(bytes->Length()));
    std::string path;
    if (FindInvalidUtf8(in, *out->GetDescriptor(), "", 0, &path) == Scan::kInvalidUtf8)
      return InvalidArgument(path + ": not valid UTF-8 (string fields must be UTF-8)");
  }
  grpc::ProtoBufferReader reader(bytes);
  if (!out->ParseFromZeroCopyStream(&reader)) return InvalidArgument(not_a_message);
  return OkStatus();
}

}  // namespace bpt::server
