// Token latencies as the client sees them, one definition for both protocols. The first arrival
// of tokens gives the time to first token. Tokens that arrive together (one gRPC message, one SSE
// event) share the gap since the previous arrival equally, so the inter-token latency does not
// depend on how the server batched its writes.
#pragma once

#include <optional>
#include <vector>

#include "stream_client.h"

namespace bptserve::loadgen {

class TokenTimeline {
 public:
  explicit TokenTimeline(Clock::time_point sent) : sent_(sent) {}

  void OnTokens(Clock::time_point arrival, int64_t count) {
    if (count <= 0) return;
    if (!ttft_s_) {
      ttft_s_ = std::chrono::duration<double>(arrival - sent_).count();
    } else {
      const double share = std::chrono::duration<double>(arrival - last_).count() / static_cast<double>(count);
      inter_token_s_.insert(inter_token_s_.end(), static_cast<size_t>(count), share);
    }
    last_ = arrival;
    tokens_ += count;
  }

  Clock::time_point sent() const { return sent_; }
  std::optional<double> ttft_s() const { return ttft_s_; }
  std::vector<double> take_inter_token_s() { return std::move(inter_token_s_); }
  int64_t tokens() const { return tokens_; }

 private:
  Clock::time_point sent_;
  Clock::time_point last_;
  std::optional<double> ttft_s_;
  std::vector<double> inter_token_s_;
  int64_t tokens_ = 0;
};

}  // namespace bptserve::loadgen
