// One Generate stream (engine_stream_call.h): the request to a job, prefill progress when asked,
// tokens (coalesced while a write is in flight), then one Finished with the usage and timings.
#pragma once

#include <atomic>
#include <string>

#include "bptserve/v1/bptserve.pb.h"
#include "engine_stream_call.h"

namespace bpt::server {

class GenerateCall final : public EngineStreamCall {
 public:
  // GenerationSink, called on the engine worker's thread.
  void OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) override;
  void OnToken(const TokenOutput& token) override;

 private:
  friend class EngineStreamCall;  // Start<GenerateCall>
  using EngineStreamCall::EngineStreamCall;
  std::string MissingRequest() const override { return "Generate carried no GenerateRequest"; }
  Status ToJob(grpc::ByteBuffer* bytes, GenerationJob* job) override;
  std::unique_ptr<google::protobuf::Message> FinalMessage(const GenerationResult& result, double e2e_s) override;
  bool Merge(google::protobuf::Message& back, google::protobuf::Message& next) override;

  // From the request, set before it goes to the worker.
  bool prefill_progress_ = false;
  bool request_uses_prefix_cache_ = true;
};

}  // namespace bpt::server
