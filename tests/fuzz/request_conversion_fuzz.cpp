// Arbitrary bytes as a Generate request's message, and as a Prefill request's (the same prompt
// fields, the same numbers), through what the server does with them: parse
// and check (server/request_parsing.h), conversion into an engine job (server/request_conversion.h)
// and the engine's validation of it (Engine::ValidateRequest, the one check of a request's fields)
// against a tiny random model in token-ids mode. None may crash,
// leak or read out of bounds; and bytes refused for invalid UTF-8 must be bytes that protobuf's
// own parser refuses too (the check names a field, it never invents a refusal).
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "random_model.h"
#include "request_conversion.h"
#include "request_parsing.h"

namespace {

bpt::Engine* engine = nullptr;

// The model, written once to a temporary directory and loaded.
bpt::Engine* MakeEngine() {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "bptserve-request-conversion-fuzz";
  bpt::RandomModelSpec spec;
  spec.config = bpt::SmallConfig();
  spec.config["num_hidden_layers"] = 1;
  spec.dtype = bpt::DType::kF32;
  const bpt::Status written = bpt::WriteRandomModel(dir.string(), spec);
  if (!written.ok()) {
    std::cerr << "cannot write the model: " << written.ToString() << "\n";
    std::abort();
  }
  bpt::EngineOptions options;
  options.model_dir = dir.string();
  options.kv_cache.capacity_tokens = 2048;
  options.cpu.num_threads = 1;
  auto created = bpt::Engine::Create(options);
  if (!created.ok()) {
    std::cerr << "cannot load the model: " << created.status().ToString() << "\n";
    std::abort();
  }
  return std::move(created).value().release();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // protobuf's parser logs each invalid UTF-8 string it refuses; the comparison below makes many.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  engine = MakeEngine();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  grpc::Slice slice(data, size);
  grpc::ByteBuffer bytes(&slice, 1);
  bptserve::v1::GenerateRequest request;
  const bpt::Status parsed = bpt::server::ParseRequest(&bytes, &request);
  if (!parsed.ok()) {
    if (parsed.message().find("not valid UTF-8") != std::string::npos &&
        bptserve::v1::GenerateRequest().ParseFromArray(data, static_cast<int>(size))) {
      std::cerr << "refused bytes that protobuf parses: " << parsed.message() << "\n";
      std::abort();
    }
    return 0;
  }
  bpt::server::GenerationJob job;
  if (bpt::server::ToGenerationJob(request, engine->model_info().default_sampling, &job).ok()) (void)engine->ValidateRequest(job.request);
  grpc::Slice again(data, size);
  grpc::ByteBuffer prefill_bytes(&again, 1);
  bptserve::v1::PrefillRequest prefill;
  bpt::server::GenerationJob prefill_job;
  if (bpt::server::ParseRequest(&prefill_bytes, &prefill).ok() &&
      bpt::server::ToPrefillJob(prefill, engine->model_info().default_sampling, &prefill_job).ok())
    (void)engine->ValidateRequest(prefill_job.request);
  return 0;
}
