// Arbitrary bytes as tokenizer.json. A file the parser accepts must encode a fixed multilingual
// text (with special-token look-alikes) into ids inside its vocabulary and decode them back
// without failing; nothing may crash, hang or leak.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "hf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kText =
      "Hello, world! <s>x</s> <|endoftext|> 日本語 русский العربية 👨‍👩‍👧 e\u0301 \t\n  1234 <0x41> ▁a";
  bpt::TokenizerConfig config;
  config.bos_token = "<s>";
  config.eos_token = "</s>";
  auto tokenizer =
      bpt::HfTokenizer::Parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/tokenizer.json", config);
  if (!tokenizer.ok()) return 0;
  const bpt::HfTokenizer& t = **tokenizer;
  auto ids = t.Encode(kText);
  if (!ids.ok()) return 0;  // an unk_token the vocabulary lacks
  for (int32_t id : *ids)
    if (id < 0 || id >= t.vocab_size()) std::abort();
  for (int32_t id : t.prefix_ids())
    if (id < 0 || id >= t.vocab_size()) std::abort();
  if (!t.Decode(*ids).ok() || !t.Decode(*ids, /*skip_special_tokens=*/true).ok()) std::abort();
  size_t bytes_encoded = 0;
  if (!ids->empty() && t.Encode(kText, ids->size() - 1, &bytes_encoded).ok()) std::abort();
  return 0;
}
