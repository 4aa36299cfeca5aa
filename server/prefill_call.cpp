#include "prefill_call.h"

#include "request_conversion.h"
#include "request_parsing.h"

namespace bpt::server {

using bptserve::v1::PrefillResponse;

Status PrefillCall::ToJob(grpc::ByteBuffer* bytes, GenerationJob* job) {
  bptserve::v1::PrefillRequest request;
  BPT_RETURN_IF_ERROR(ParseRequest(bytes, &request));
  return ToPrefillJob(request, worker_.default_sampling(), job);
}

void PrefillCall::OnPrefillProgress(int64_t processed_tokens, int64_t total_tokens) {
  auto r = std::make_unique<PrefillResponse>();
  r->mutable_prefill_progress()->set_processed_tokens(processed_tokens);
  r->mutable_prefill_progress()->set_total_tokens(total_tokens);
  Enqueue(std::move(r));
}

bool PrefillCall::Merge(google::protobuf::Message& back, google::protobuf::Message& next) {
  // Progress that arrives while a write is in flight supersedes the progress still waiting.
  auto& b = static_cast<PrefillResponse&>(back);
  auto& n = static_cast<PrefillResponse&>(next);
  if (!b.has_prefill_progress() || !n.has_prefill_progress()) return false;
  b = std::move(n);
  return true;
}

std::unique_ptr<google::protobuf::Message> PrefillCall::FinalMessage(const GenerationResult& g, double e2e_s) {
  auto r = std::make_unique<PrefillResponse>();
  ToProtoPrefillFinished(g, r->mutable_finished());
  if (metrics_ != nullptr) metrics_->RecordPrefill(g, e2e_s);
  return r;
}

}  // namespace bpt::server
