// The `normalizer` of a Hugging Face tokenizer.json: text rewritten before it is split (NFC,
// NFKC, Prepend, Replace, Lowercase, Strip, Sequence, ...). Offsets are never needed here, so a
// normalizer maps a string to a string.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "status.h"

namespace bpt::hf {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `text` is valid UTF-8; so is the result.
  virtual std::string Normalize(std::string_view text) const = 0;
};

// `spec` is tokenizer.json's "normalizer" value (an object with "type"); null gives nullptr (no
// normalizer). An unknown type or a malformed field is InvalidArgument naming it by its path in
// the file ("normalizer.normalizers[1].type: 'Foo' is not supported").
StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& spec, const std::string& where);

}  // namespace bpt::hf
