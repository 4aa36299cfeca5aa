// The `post_processor` of a Hugging Face tokenizer.json, for what it puts around one sequence
// with add_special_tokens=True: TemplateProcessing's "single", BertProcessing/RobertaProcessing's
// cls and sep, ByteLevel (nothing), and Sequence of these.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "status.h"

namespace bpt::hf {

struct SequenceAffixes {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

// `spec` is the "post_processor" value (not null); errors name `where` and the field.
StatusOr<SequenceAffixes> ParsePostProcessor(const nlohmann::json& spec, const std::string& where);

}  // namespace bpt::hf
