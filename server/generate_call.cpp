#include "generate_call.h"

#include "request_conversion.h"
#include "request_parsing.h"

namespace bpt::server {
namespace {

using bptserve::v1::GenerateResponse;

bptserve::v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kEos: return bptserve::v1::FINISH_REASON_EOS;
    case FinishReason::kStop: return bptserve::v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return bptserve::v1::FINISH_REASON_LENGTH;
    case FinishReason::kCancelled: return bptserve::v1::FINISH_REASON_CANCELLED;
  }
  return bptserve::v1::FINISH_REASON_UNSPECIFIED;
}

}  // namespace

Status GenerateCall::ToJob(grpc::ByteBuffer* bytes, GenerationJob* job) {
  bptserve::v1::GenerateRequest request;
  BPT_RETURN_IF_ERROR(ParseRequest(bytes, &request));
  prefill_progress_ = request.options().prefill_progress();
  request_uses_prefix_cache_ = !request.options().bypass_prefix_cache();
  return ToGenerationJob(request, worker_.default_sampling(), job);
}

void GenerateCall::OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) {
  if (!prefill_progress_) return;
  auto r = std::make_unique<GenerateResponse>();
  r->mutable_prefill_progress()->set_processed_tokens(processed_tokens);
  r->mutable_prefill_progress()->set_total_tokens(total_tokens);
  Enqueue(std::move(r));
}

void GenerateCall::OnToken(const TokenOutput& token) {
  auto r = std::make_unique<GenerateResponse>();
  auto* chunk = r->mutable_tokens();
  chunk->add_token_ids(token.token_id);
  chunk->set_text(token.text);
  if (!token.top_logprobs.empty()) {
    auto* lp = chunk->add_logprobs();
    lp->set_logprob(token.logprob);
    for (const auto& [id, logprob] : token.top_logprobs) {
      auto* top = lp->add_top();
      top->set_token_id(id);
      top->set_logprob(logprob);
    }
  }
  Enqueue(std::move(r));
}

bool GenerateCall::Merge(google::protobuf::Message& back_message, google::protobuf::Message& next_message) {
  auto& back = static_cast<GenerateResponse&>(back_message);
  auto& next = static_cast<GenerateResponse&>(next_message);
  // Tokens that arrive while a write is in flight travel together in one message.
  if (back.has_tokens() && next.has_tokens()) {
    auto* into = back.mutable_tokens();
    into->mutable_token_ids()->MergeFrom(next.tokens().token_ids());
    into->mutable_text()->append(next.tokens().text());
    into->mutable_logprobs()->MergeFrom(next.tokens().logprobs());
    return true;
  }
  if (back.has_prefill_progress() && next.has_prefill_progress()) {
    back = std::move(next);
    return true;
  }
  return false;
}

std::unique_ptr<google::protobuf::Message> GenerateCall::FinalMessage(const GenerationResult& g, double e2e_s) {
  auto r = std::make_unique<GenerateResponse>();
  auto* f = r->mutable_finished();
  f->set_reason(ToProto(g.finish_reason));
  ToProtoUsage(g, f->mutable_usage());
  ToProtoTimings(g.timings, f->mutable_timings());
  if (metrics_ != nullptr) metrics_->RecordFinished(g, request_uses_prefix_cache_, e2e_s);
  return r;
}

}  // namespace bpt::server
