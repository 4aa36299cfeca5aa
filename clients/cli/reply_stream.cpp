#include "reply_stream.h"

#include <algorithm>
#include <iostream>

namespace bpt::cli {

void DrawPrefillProgress(const bptserve::v1::PrefillProgress& p) {
  // Clamped: the counts come from the server, and a bar is no place to fail on them.
  const int64_t total = std::max<int64_t>(1, p.total_tokens());
  const int width = 40;
  const int filled = static_cast<int>(std::clamp<int64_t>(p.processed_tokens(), 0, total) * width / total);
  std::cerr << "\rprefill [" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
            << p.processed_tokens() << "/" << p.total_tokens() << (p.processed_tokens() == p.total_tokens() ? "\n" : "")
            << std::flush;
}

grpc::Status StreamReply(bptserve::v1::Inference::Stub& stub, grpc::ClientContext* context,
                         const bptserve::v1::GenerateRequest& request, bool print_text, Reply* reply) {
  auto reader = stub.Generate(context, request);
  bptserve::v1::GenerateResponse res;
  while (reader->Read(&res)) {
    if (res.has_prefill_progress()) {
      DrawPrefillProgress(res.prefill_progress());
    } else if (res.has_tokens()) {
      reply->token_ids.insert(reply->token_ids.end(), res.tokens().token_ids().begin(), res.tokens().token_ids().end());
      reply->text += res.tokens().text();
      if (print_text) std::cout << res.tokens().text() << std::flush;
    } else if (res.has_finished()) {
      reply->finished = res.finished();
    }
  }
  return reader->Finish();
}

}  // namespace bpt::cli
