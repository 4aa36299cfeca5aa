// Token latencies as the client sees them, one definition for both protocols. The unit is an
// arrival of text: a gRPC TokenChunk or an SSE event whose text is not empty. A token without
// text of its own (part of a UTF-8 character) is no arrival, because the HTTP stream does not
// show it at all (its text comes with the next token's event); its time is part of the next gap,
// in both modes alike. The first arrival gives the time to first token; the tokens of one arrival
// (a coalesced gRPC message) share the gap since the previous one equally.
#pragma once

#include <optional>
#include <vector>

#include "stream_client.h"

namespace bptserve::loadgen {

class TokenTimeline {
 public:
  explicit TokenTimeline(Clock::time_point sent) : sent_(sent) {}

  void OnText(Clock::time_point arrival, int64_t tokens) {
    if (!ttft_s_) {
      ttft_s_ = std::chrono::duration<double>(arrival - sent_).count();
    } else {
      const double share = std::chrono::duration<double>(arrival - last_).count() / static_cast<double>(tokens);
      inter_token_s_.insert(inter_token_s_.end(), static_cast<size_t>(tokens), share);
    }
    last_ = arrival;
  }

  Clock::time_point sent() const { return sent_; }
  std::optional<double> ttft_s() const { return ttft_s_; }
  std::vector<double> take_inter_token_s() { return std::move(inter_token_s_); }

 private:
  Clock::time_point sent_;
  Clock::time_point last_;
  std::optional<double> ttft_s_;
  std::vector<double> inter_token_s_;
};

}  // namespace bptserve::loadgen
