// The `pre_tokenizer` of a Hugging Face tokenizer.json: normalized text cut into the pieces the
// model encodes one at a time (ByteLevel with or without its regex, Split, Digits, Metaspace,
// Punctuation, Whitespace, WhitespaceSplit, Sequence, ...). A piece's text is what the model sees:
// ByteLevel maps its bytes to GPT-2's printable characters, Metaspace writes spaces as U+2581.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace bpt::hf {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Appends the pieces of `text` (valid UTF-8) to `pieces`, in order; empty text gives none.
  // at_text_start: `text` begins the caller's whole input (not a segment after an added token).
  // HF tests a split's offset in the original input, and only Metaspace's prepend_scheme "first"
  // depends on it: it prepends U+2581 only to the piece at offset 0, so only when at_text_start
  // (and, inside a Sequence, only to the first piece an earlier step cut, when that piece begins
  // the text). ByteLevel's add_prefix_space does not depend on it: HF adds the space to every
  // piece that reaches it without one, the segments after added tokens included; "always" does
  // the same for Metaspace.
  virtual void Split(std::string_view text, bool at_text_start, std::vector<std::string>& pieces) const = 0;
};

// `spec` is tokenizer.json's "pre_tokenizer" value; null gives nullptr (the whole text is one
// piece). Errors as for ParseNormalizer, naming the path ("pre_tokenizer.pretokenizers[0].pattern").
StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const nlohmann::json& spec, const std::string& where);

}  // namespace bpt::hf
