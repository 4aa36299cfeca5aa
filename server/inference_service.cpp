#include "server/inference_service.h"

#include "server/generate_call.h"
#include "server/grpc_status.h"
#include "server/request_conversion.h"

namespace bpt::server {

InferenceService::InferenceService(const ServerOptions& options, ApiKeyAuth auth, Metrics* metrics)
    : options_(options), auth_(std::move(auth)), metrics_(metrics) {}

void InferenceService::SetReady(Engine* engine, EngineWorker* worker) {
  engine_ = engine;
  worker_ = worker;
}

grpc::Status InferenceService::Admit(const grpc::CallbackServerContext& context) const {
  grpc::Status auth = auth_.Check(context);
  if (!auth.ok()) return auth;
  if (!accepting_.load()) return {grpc::StatusCode::UNAVAILABLE, "the server is shutting down"};
  if (engine_.load() == nullptr) return {grpc::StatusCode::UNAVAILABLE, "the model is still loading"};
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* InferenceService::FinishUnary(grpc::CallbackServerContext* context,
                                                        const grpc::Status& status) {
  if (!status.ok() && metrics_ != nullptr) metrics_->RecordError(status.error_code());
  auto* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::ServerWriteReactor<bptserve::v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const bptserve::v1::GenerateRequest* request) {
  auto call = GenerateCall::Start(context, request->options(), metrics_, &open_streams_);
  grpc::Status admitted = Admit(*context);
  if (!admitted.ok()) {
    call->Fail(admitted);
    return call.get();
  }
  GenerationJob job;
  Status converted = ToGenerationJob(*request, *engine_.load(), &job);
  if (!converted.ok()) {
    call->Fail(ToGrpcStatus(converted));
    return call.get();
  }
  job.sink = call;
  Status submitted = worker_.load()->Submit(std::move(job));
  if (!submitted.ok()) call->Fail(ToGrpcStatus(submitted));
  return call.get();
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* context,
                                                     const bptserve::v1::TokenizeRequest* request,
                                                     bptserve::v1::TokenizeResponse* response) {
  grpc::Status admitted = Admit(*context);
  if (!admitted.ok()) return FinishUnary(context, admitted);
  const Engine& engine = *engine_.load();
  StatusOr<std::vector<int32_t>> ids = request->add_bos()
                                           ? engine.EncodePrompt(request->text())
                                           : (engine.tokenizer() == nullptr
                                                  ? StatusOr<std::vector<int32_t>>(FailedPrecondition(
                                                        "this model is served in token-ids mode (no tokenizer.model)"))
                                                  : engine.tokenizer()->Encode(request->text()));
  if (!ids.ok()) return FinishUnary(context, ToGrpcStatus(ids.status()));
  response->mutable_token_ids()->Assign(ids->begin(), ids->end());
  return FinishUnary(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* context,
                                                       const bptserve::v1::DetokenizeRequest* request,
                                                       bptserve::v1::DetokenizeResponse* response) {
  grpc::Status admitted = Admit(*context);
  if (!admitted.ok()) return FinishUnary(context, admitted);
  const Engine& engine = *engine_.load();
  if (engine.tokenizer() == nullptr)
    return FinishUnary(context, ToGrpcStatus(FailedPrecondition("this model is served in token-ids mode (no tokenizer.model)")));
  const std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  StatusOr<std::string> text = engine.tokenizer()->Decode(ids);
  if (!text.ok()) return FinishUnary(context, ToGrpcStatus(text.status()));
  response->set_text(*text);
  return FinishUnary(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* context,
                                                         const bptserve::v1::GetModelInfoRequest*,
                                                         bptserve::v1::ModelInfo* response) {
  grpc::Status admitted = Admit(*context);
  if (!admitted.ok()) return FinishUnary(context, admitted);
  const Engine& engine = *engine_.load();
  response->set_architecture(engine.config().architecture);
  response->set_model_dir(options_.model_dir);
  response->set_context_limit_tokens(engine.max_model_len());
  response->set_kv_capacity_tokens(engine.kv_capacity_tokens());
  response->set_dtype("float32");
  response->set_device(engine.device());
  response->set_vocab_size(engine.config().vocab_size);
  response->set_token_ids_mode(engine.tokenizer() == nullptr);
  response->set_prefill_block_tokens(options_.prefill_block);
  return FinishUnary(context, grpc::Status::OK);
}

}  // namespace bpt::server
