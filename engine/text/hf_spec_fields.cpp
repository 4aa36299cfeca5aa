#include "hf_spec_fields.h"

namespace bpt::hf {

std::string FieldPath(const std::string& where, std::string_view key) {
  std::string path = where;
  path += '.';
  path += key;
  return path;
}

StatusOr<const nlohmann::json*> RequiredField(const nlohmann::json& spec, std::string_view key,
                                              const std::string& where) {
  const auto it = spec.find(key);
  if (it == spec.end()) return InvalidArgument(FieldPath(where, key) + ": missing");
  return &*it;
}

StatusOr<bool> BoolField(const nlohmann::json& spec, std::string_view key, const std::string& where,
                         std::optional<bool> fallback) {
  const auto it = spec.find(key);
  if (it == spec.end() && fallback.has_value()) return *fallback;
  if (it == spec.end()) return InvalidArgument(FieldPath(where, key) + ": missing");
  if (!it->is_boolean()) return InvalidArgument(FieldPath(where, key) + ": expected true or false, got " + it->dump());
  return it->get<bool>();
}

StatusOr<std::string> StringField(const nlohmann::json& spec, std::string_view key, const std::string& where,
                                  std::optional<std::string> fallback) {
  const auto it = spec.find(key);
  if (it == spec.end() && fallback.has_value()) return *std::move(fallback);
  if (it == spec.end()) return InvalidArgument(FieldPath(where, key) + ": missing");
  if (!it->is_string()) return InvalidArgument(FieldPath(where, key) + ": expected a string, got " + it->dump());
  return it->get<std::string>();
}

StatusOr<std::string> ComponentType(const nlohmann::json& spec, const std::string& where) {
  if (!spec.is_object()) return InvalidArgument(where + ": expected an object, got " + spec.dump());
  return StringField(spec, "type", where);
}

Status CheckSequenceDepth(int depth, const std::string& where) {
  if (depth <= kMaxSequenceDepth) return OkStatus();
  return InvalidArgument(where + ": Sequences nest more than " + std::to_string(kMaxSequenceDepth) + " deep");
}

}  // namespace bpt::hf
