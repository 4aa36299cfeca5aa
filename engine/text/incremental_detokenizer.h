// Streams the text of generated tokens. Each call returns only text that is final: a window of
// recent tokens is decoded twice (up to the last emitted token, and to the newest) and the
// difference is emitted once it no longer ends in an incomplete UTF-8 sequence (decoded as
// U+FFFD). The pieces concatenate to exactly the text the whole sequence decodes to.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer.h"

namespace bpt {

class IncrementalDetokenizer {
 public:
  // context: tokens before the generated ones (the prompt's tail), so a generated token's
  // leading space decodes as it would mid-text. skip_special_tokens: as HF's decode takes it.
  IncrementalDetokenizer(const Tokenizer& tokenizer, std::vector<int32_t> context, bool skip_special_tokens);

  StatusOr<std::string> Push(int32_t token_id);
  // Whatever is still held back (an incomplete byte sequence at the end of generation).
  StatusOr<std::string> Flush();

 private:
  StatusOr<std::string> DecodeWindow(size_t end) const;

  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_;  // the window starts here
  size_t read_offset_;    // text of [prefix_offset_, read_offset_) has been emitted
};

}  // namespace bpt
