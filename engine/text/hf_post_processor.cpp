#include "hf_post_processor.h"

#include "hf_spec_fields.h"

namespace bpt::hf {
namespace {

using nlohmann::json;

constexpr int64_t kMaxId = INT32_MAX;

StatusOr<int32_t> Id(const json& value, const std::string& where) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > kMaxId)
    return InvalidArgument(where + ": expected a token id (an integer >= 0)");
  return static_cast<int32_t>(value.get<int64_t>());
}

// BertProcessing's and RobertaProcessing's ["token", id].
StatusOr<int32_t> TokenPairId(const json& spec, std::string_view key, const std::string& where) {
  BPT_ASSIGN_OR_RETURN(const json* pair, RequiredField(spec, key, where));
  const std::string path = FieldPath(where, key);
  if (!pair->is_array() || pair->size() != 2 || !(*pair)[0].is_string())
    return InvalidArgument(path + ": expected [\"token\", id]");
  return Id((*pair)[1], path + "[1]");
}

// TemplateProcessing: the special tokens of "single" before and after its sequence $A.
Status ParseTemplate(const json& spec, const std::string& where, SequenceAffixes& out) {
  BPT_ASSIGN_OR_RETURN(const json* single, RequiredField(spec, "single", where));
  BPT_ASSIGN_OR_RETURN(const json* specials, RequiredField(spec, "special_tokens", where));
  const std::string single_path = FieldPath(where, "single");
  const std::string specials_path = FieldPath(where, "special_tokens");
  if (!single->is_array()) return InvalidArgument(single_path + ": expected a list");
  if (!specials->is_object()) return InvalidArgument(specials_path + ": expected an object");
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& piece = (*single)[i];
    const std::string at = single_path + "[" + std::to_string(i) + "]";
    if (!piece.is_object() || piece.size() != 1)
      return InvalidArgument(at + ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    const std::string kind = piece.begin().key();
    const json& body = piece.begin().value();
    if (kind == "Sequence") {
      BPT_ASSIGN_OR_RETURN(std::string id, StringField(body, "id", at + ".Sequence"));
      if (id != "A") return InvalidArgument(at + ".Sequence.id: a single sequence is $A, not $" + id);
      if (seen_sequence) return InvalidArgument(at + ": $A appears twice");
      seen_sequence = true;
      continue;
    }
    if (kind != "SpecialToken") return InvalidArgument(at + ": '" + kind + "' is neither Sequence nor SpecialToken");
    BPT_ASSIGN_OR_RETURN(std::string name, StringField(body, "id", at + ".SpecialToken"));
    const auto token = specials->find(name);
    if (token == specials->end()) return InvalidArgument(at + ": '" + name + "' is not in " + specials_path);
    const std::string token_path = specials_path + "['" + name + "']";
    BPT_ASSIGN_OR_RETURN(const json* ids, RequiredField(*token, "ids", token_path));
    if (!ids->is_array()) return InvalidArgument(token_path + ".ids: expected a list");
    std::vector<int32_t>& side = seen_sequence ? out.suffix : out.prefix;
    for (size_t k = 0; k < ids->size(); ++k) {
      BPT_ASSIGN_OR_RETURN(int32_t id, Id((*ids)[k], token_path + ".ids[" + std::to_string(k) + "]"));
      side.push_back(id);
    }
  }
  if (!seen_sequence) return InvalidArgument(single_path + ": has no $A");
  return OkStatus();
}

// `depth`: the Sequences enclosing the processor at `where`.
StatusOr<SequenceAffixes> ParseStep(const json& spec, const std::string& where, int depth) {
  BPT_RETURN_IF_ERROR(CheckSequenceDepth(depth, where));
  BPT_ASSIGN_OR_RETURN(std::string type, ComponentType(spec, where));
  SequenceAffixes affixes;
  if (type == "TemplateProcessing") {
    BPT_RETURN_IF_ERROR(ParseTemplate(spec, where, affixes));
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    BPT_ASSIGN_OR_RETURN(int32_t cls, TokenPairId(spec, "cls", where));
    BPT_ASSIGN_OR_RETURN(int32_t sep, TokenPairId(spec, "sep", where));
    affixes.prefix = {cls};
    affixes.suffix = {sep};
  } else if (type == "Sequence") {
    // Each processor wraps what the ones before it made.
    BPT_ASSIGN_OR_RETURN(const json* processors, RequiredField(spec, "processors", where));
    const std::string path = FieldPath(where, "processors");
    if (!processors->is_array()) return InvalidArgument(path + ": expected a list");
    for (size_t i = 0; i < processors->size(); ++i) {
      BPT_ASSIGN_OR_RETURN(SequenceAffixes inner,
                           ParseStep((*processors)[i], path + "[" + std::to_string(i) + "]", depth + 1));
      inner.prefix.insert(inner.prefix.end(), affixes.prefix.begin(), affixes.prefix.end());
      affixes.prefix = std::move(inner.prefix);
      affixes.suffix.insert(affixes.suffix.end(), inner.suffix.begin(), inner.suffix.end());
    }
  } else if (type != "ByteLevel") {
    return InvalidArgument(FieldPath(where, "type") + ": '" + type + "' is not supported");
  }
  return affixes;
}

}  // namespace

StatusOr<SequenceAffixes> ParsePostProcessor(const json& spec, const std::string& where) {
  return ParseStep(spec, where, 0);
}

}  // namespace bpt::hf
