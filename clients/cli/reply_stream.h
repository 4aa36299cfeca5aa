// Reading one Generate stream in bptserve-cli: the text printed as it arrives, a prefill
// progress bar on stderr (Prefill's stream draws it too), and what came back, kept for the
// caller (JSON output, chat history).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bptserve/v1/bptserve.grpc.pb.h"

namespace bpt::cli {

struct Reply {
  std::vector<int32_t> token_ids;
  std::string text;
  bptserve::v1::Finished finished;
};

// The prefill progress bar on stderr (a newline once the prompt is done).
void DrawPrefillProgress(const bptserve::v1::PrefillProgress& progress);

// Streams `request`; with print_text, each piece of text goes to stdout as it comes. The bar is
// drawn for the PrefillProgress messages the request asked for.
grpc::Status StreamReply(bptserve::v1::Inference::Stub& stub, grpc::ClientContext* context,
                         const bptserve::v1::GenerateRequest& request, bool print_text, Reply* reply);

}  // namespace bpt::cli
