#include "incremental_detokenizer.h"

namespace bpt {
namespace {

constexpr size_t kContextTokens = 6;

bool EndsWithReplacementChar(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, std::vector<int32_t> context,
                                               bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {
  if (context.size() > kContextTokens) context.erase(context.begin(), context.end() - kContextTokens);
  ids_ = std::move(context);
  prefix_offset_ = 0;
  read_offset_ = ids_.size();
}

StatusOr<std::string> IncrementalDetokenizer::DecodeWindow(size_t end) const {
  return tokenizer_.Decode(std::span<const int32_t>(ids_).subspan(prefix_offset_, end - prefix_offset_),
                           skip_special_tokens_);
}

StatusOr<std::string> IncrementalDetokenizer::Push(int32_t token_id) {
  ids_.push_back(token_id);
  BPT_ASSIGN_OR_RETURN(std::string before, DecodeWindow(read_offset_));
  BPT_ASSIGN_OR_RETURN(std::string now, DecodeWindow(ids_.size()));
  if (now.size() <= before.size() || EndsWithReplacementChar(now)) return std::string();
  std::string delta = now.substr(before.size());
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  // Keep the window short: the ids before prefix_offset_ are never decoded again.
  if (prefix_offset_ > 64) {
    ids_.erase(ids_.begin(), ids_.begin() + prefix_offset_);
    read_offset_ -= prefix_offset_;
    prefix_offset_ = 0;
  }
  return delta;
}

StatusOr<std::string> IncrementalDetokenizer::Flush() {
  BPT_ASSIGN_OR_RETURN(std::string before, DecodeWindow(read_offset_));
  BPT_ASSIGN_OR_RETURN(std::string now, DecodeWindow(ids_.size()));
  read_offset_ = ids_.size();
  if (now.size() <= before.size()) return std::string();
  return now.substr(before.size());
}

}  // namespace bpt
