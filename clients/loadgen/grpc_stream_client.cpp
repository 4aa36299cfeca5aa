#include "grpc_stream_client.h"

#include "token_timeline.h"

namespace bptserve::loadgen {

GrpcStreamClient::GrpcStreamClient(const std::shared_ptr<grpc::Channel>& channel, std::string api_key)
    : stub_(bptserve::v1::Inference::NewStub(channel)), api_key_(std::move(api_key)) {}

StreamResult GrpcStreamClient::Stream(const LoadRequest& request) {
  bptserve::v1::GenerateRequest message;
  message.set_text(request.prompt);
  message.mutable_sampling()->set_seed(request.seed);
  message.mutable_stopping()->set_max_new_tokens(request.max_new_tokens);
  message.mutable_stopping()->set_ignore_eos(true);
  grpc::ClientContext context;
  if (!api_key_.empty()) context.AddMetadata("authorization", "Bearer " + api_key_);

  TokenTimeline timeline(Clock::now());
  auto reader = stub_->Generate(&context, message);
  bptserve::v1::GenerateResponse response;
  int finished = 0;
  int64_t tokens = 0;
  while (reader->Read(&response)) {
    const auto arrival = Clock::now();
    if (response.has_tokens()) {
      tokens += response.tokens().token_ids_size();
      if (!response.tokens().text().empty()) timeline.OnText(arrival, response.tokens().token_ids_size());
    }
    if (response.has_finished()) ++finished;
  }
  const grpc::Status status = reader->Finish();

  StreamResult result;
  result.e2e_s = std::chrono::duration<double>(Clock::now() - timeline.sent()).count();
  result.status = status.ok() ? "OK" : std::to_string(status.error_code());
  result.succeeded = status.ok() && finished == 1;
  result.protocol_violation = status.ok() != (finished == 1) || finished > 1;
  if (result.protocol_violation) {
    result.problem = "status " + *result.status + " after " + std::to_string(finished) + " Finished messages";
  } else if (!status.ok()) {
    result.problem = status.error_message();
  }
  result.ttft_s = timeline.ttft_s();
  result.tokens = tokens;
  result.inter_token_s = timeline.take_inter_token_s();
  return result;
}

}  // namespace bptserve::loadgen
