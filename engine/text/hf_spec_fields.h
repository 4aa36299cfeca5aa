// Typed fields of one tokenizer.json component object (a normalizer, a pre-tokenizer), with
// errors that name the field by its path in the file ("pre_tokenizer.pretokenizers[1].behavior").
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "status.h"

namespace bpt::hf {

// "<where>.<key>": the path of a field of the object at `where`.
std::string FieldPath(const std::string& where, std::string_view key);

// The field `key` of `spec` (an object); absent is `fallback` where one is given, else an error
// ("<where>.<key>: missing"), as HF's deserializer refuses a required field left out.
StatusOr<bool> BoolField(const nlohmann::json& spec, std::string_view key, const std::string& where,
                         std::optional<bool> fallback = std::nullopt);
StatusOr<std::string> StringField(const nlohmann::json& spec, std::string_view key, const std::string& where,
                                  std::optional<std::string> fallback = std::nullopt);
// A required field of any type.
StatusOr<const nlohmann::json*> RequiredField(const nlohmann::json& spec, std::string_view key,
                                              const std::string& where);
// The "type" of a component: `spec` must be an object with a string "type".
StatusOr<std::string> ComponentType(const nlohmann::json& spec, const std::string& where);

// How deep Sequences may nest inside one component. Real files nest one or two; each level is a
// recursive call of the parser, so a hostile file's nesting must stop well before the stack does.
inline constexpr int kMaxSequenceDepth = 64;
// Refuses the component at `where` when `depth` Sequences enclose it, past kMaxSequenceDepth.
Status CheckSequenceDepth(int depth, const std::string& where);

}  // namespace bpt::hf
