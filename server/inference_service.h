// The unary methods of bptserve.v1.Inference: they touch only the tokenizer and the model's
// description, never the engine worker. The dispatcher (generic_dispatcher.h) admits the call and
// parses the request first.
#pragma once

#include <functional>

#include "bptserve/v1/bptserve.pb.h"
#include "engine.h"
#include "engine_worker.h"
#include "server_options.h"

namespace bpt::server {

// Tokenize and Detokenize run on the worker's tokenizer pool, never on the gRPC thread; done
// runs once with the outcome.
void Tokenize(EngineWorker& worker, const bptserve::v1::TokenizeRequest& request,
              bptserve::v1::TokenizeResponse* response, std::function<void(const Status&)> done);
void Detokenize(EngineWorker& worker, const bptserve::v1::DetokenizeRequest& request,
                bptserve::v1::DetokenizeResponse* response, std::function<void(const Status&)> done);
void DescribeModel(const Engine& engine, const ServerOptions& options, bptserve::v1::ModelInfo* info);

}  // namespace bpt::server
