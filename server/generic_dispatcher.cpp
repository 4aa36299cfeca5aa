#include "generic_dispatcher.h"

#include <string_view>

#include "bptserve/v1/bptserve.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "grpc/reflection/v1alpha/reflection.pb.h"
#include "generate_call.h"
#include "grpc_status.h"
#include "inference_service.h"
#include "prefill_call.h"
#include "reflection_service.h"
#include "unary_call.h"

namespace bpt::server {
namespace {

using namespace bptserve::v1;

// The service its message's file defines.
const std::string& ServiceOf(const google::protobuf::Descriptor* message) {
  return message->file()->service(0)->full_name();
}

constexpr std::string_view kInference = "/bptserve.v1.Inference/";
constexpr std::string_view kReflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
// v1 is v1alpha under another package name, message for message: grpcurl asks for it first.
constexpr std::string_view kReflectionV1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

class RefusedCall final : public grpc::ServerGenericBidiReactor {
 public:
  explicit RefusedCall(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

GenericDispatcher::GenericDispatcher(const ServerOptions& options, ApiKeyAuth auth, Metrics* metrics)
    : options_(options),
      auth_(std::move(auth)),
      metrics_(metrics),
      // The health service is gRPC's own; its descriptor is linked in so reflection can describe it.
      services_{ServiceOf(GenerateRequest::descriptor()), ServiceOf(grpc::health::v1::HealthCheckRequest::descriptor()),
                ServiceOf(grpc::reflection::v1alpha::ServerReflectionRequest::descriptor())} {}

void GenericDispatcher::SetReady(Engine* engine, EngineWorker* worker) {
  worker_ = worker;  // first: a call admitted once engine_ is set finds the worker
  engine_ = engine;
}

Status GenericDispatcher::AdmitInference(const grpc::CallbackServerContext& context) const {
  BPT_RETURN_IF_ERROR(auth_.Check(context));
  if (!accepting_.load()) return Status(StatusCode::kUnavailable, "the server is shutting down");
  if (engine_.load() == nullptr) return Status(StatusCode::kUnavailable, "the model is still loading");
  return OkStatus();
}

std::string GenericDispatcher::CacheSalt(const grpc::CallbackServerContext& context) const {
  return options_.kv_cache_salt_per_api_key ? auth_.CacheSalt(context) : std::string();
}

grpc::ServerGenericBidiReactor* GenericDispatcher::Refuse(const Status& status) {
  const grpc::Status refusal = ToGrpcStatus(status);
  if (metrics_ != nullptr) metrics_->RecordError(refusal.error_code());
  return new RefusedCall(refusal);
}

grpc::ServerGenericBidiReactor* GenericDispatcher::CreateReactor(grpc::GenericCallbackServerContext* context) {
  const std::string& method = context->method();
  if (method == kReflection || method == kReflectionV1) {
    if (!options_.reflection_without_key) {
      const Status auth = auth_.Check(*context);
      if (!auth.ok()) return Refuse(auth);
    }
    return new ReflectionCall(&services_, metrics_);
  }
  if (method.rfind(kInference, 0) != 0)
    return Refuse(Unimplemented("unknown method " + method));
  const std::string_view name = std::string_view(method).substr(kInference.size());
  if (name != "Generate" && name != "Prefill" && name != "Tokenize" && name != "Detokenize" && name != "GetModelInfo")
    return Refuse(Unimplemented("unknown method " + method));
  const Status admitted = AdmitInference(*context);
  if (!admitted.ok()) return Refuse(admitted);

  const Engine& engine = *engine_.load();
  if (name == "Generate")
    return EngineStreamCall::Start<GenerateCall>(context, *worker_.load(), metrics_, &open_streams_, CacheSalt(*context));
  if (name == "Prefill")
    return EngineStreamCall::Start<PrefillCall>(context, *worker_.load(), metrics_, &open_streams_, CacheSalt(*context));
  if (name == "Tokenize") {
    EngineWorker* worker = worker_.load();
    return UnaryCall::StartAsync<TokenizeRequest, TokenizeResponse>(
        context, metrics_, [worker](const TokenizeRequest& q, TokenizeResponse* a, UnaryCall::Done done) {
          Tokenize(*worker, q, a, std::move(done));
        });
  }
  if (name == "Detokenize") {
    EngineWorker* worker = worker_.load();
    return UnaryCall::StartAsync<DetokenizeRequest, DetokenizeResponse>(
        context, metrics_, [worker](const DetokenizeRequest& q, DetokenizeResponse* a, UnaryCall::Done done) {
          Detokenize(*worker, q, a, std::move(done));
        });
  }
  return UnaryCall::Start<GetModelInfoRequest, bptserve::v1::ModelInfo>(context, metrics_,
                                                          [this, &engine](const GetModelInfoRequest&, bptserve::v1::ModelInfo* a) {
                                                            DescribeModel(engine, options_, a);
                                                            return OkStatus();
                                                          });
}

}  // namespace bpt::server
