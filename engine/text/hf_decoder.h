// The `decoder` of a Hugging Face tokenizer.json: the tokens of ids turned back into text
// (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder, Sequence),
// each as the tokenizers crate's decode_chain does it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "status.h"

namespace bpt::hf {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the tokens in place; the text is their concatenation afterwards.
  virtual void DecodeChain(std::vector<std::string>& tokens) const = 0;
};

// `spec` is the "decoder" value (not null); an unknown type or a malformed field is
// InvalidArgument naming its path.
StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const nlohmann::json& spec, const std::string& where);

// Bytes as text, each invalid sequence replaced by U+FFFD as Rust's String::from_utf8_lossy does.
std::string Utf8Lossy(std::string_view bytes);
// How many leading bytes are well-formed UTF-8 (bytes.size() for valid text).
size_t Utf8ValidPrefix(std::string_view bytes);

}  // namespace bpt::hf
