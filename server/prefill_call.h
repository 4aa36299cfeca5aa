// One Prefill stream (engine_stream_call.h): a document's prompt to a prefill_only job, progress
// after each prefill block, then one PrefillFinished once the tiers hold its KV.
#pragma once

#include <atomic>
#include <string>

#include "bptserve/v1/bptserve.pb.h"
#include "engine_stream_call.h"

namespace bpt::server {

class PrefillCall final : public EngineStreamCall {
 public:
  // GenerationSink, called on the engine worker's thread. A prefill generates no token.
  void OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) override;
  void OnToken(const TokenOutput&) override {}

 private:
  friend class EngineStreamCall;  // Start<PrefillCall>
  using EngineStreamCall::EngineStreamCall;
  std::string MissingRequest() const override { return "Prefill carried no PrefillRequest"; }
  Status ToJob(grpc::ByteBuffer* bytes, GenerationJob* job) override;
  std::unique_ptr<google::protobuf::Message> FinalMessage(const GenerationResult& result, double e2e_s) override;
  bool Merge(google::protobuf::Message& back, google::protobuf::Message& next) override;
};

}  // namespace bpt::server
