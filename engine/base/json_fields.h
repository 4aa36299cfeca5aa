// Checked reads of JSON model files (config.json, the safetensors header and index, tokenizer_config.json,
// generation_config.json). Files written by hand or by an attacker give
// every field any type: each getter checks the JSON type and the range (integers in 64 bits,
// before the caller narrows them) and returns a Status naming the file and the key. Nothing here
// throws, so a bad model file cannot take the process down.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace bpt {

// Parses text with exceptions off; a syntax error names `source` and says where the text went
// wrong. The top level must be an object.
StatusOr<nlohmann::json> ParseJsonObject(std::string_view text, const std::string& source);

// Refuses text whose arrays and objects nest deeper than max_depth, without parsing it. nlohmann
// parses and destroys without recursion, but copying a value and dump() recurse: a reader that
// does either on a file nested millions deep checks it first.
Status CheckJsonDepth(std::string_view text, size_t max_depth, const std::string& source);

// Reads a JSON object from a file of at most max_bytes (a FIFO is read as it streams in).
// NotFound when the file does not exist.
StatusOr<nlohmann::json> ReadJsonFile(const std::string& path, size_t max_bytes);

struct IntRange {
  int64_t min;
  int64_t max;
};

struct NumberRange {
  double min;
  double max;
};

// How an optional getter treats a JSON null. Hugging Face writes an unset (None) attribute as
// null, so for some fields null means "absent"; for the rest it is a type error.
enum class Null { kError, kAbsent };

// The fields of one JSON object. `where` begins every message (the file, and what in it the
// object is); nested objects name their keys by path ('rope_scaling.factor').
class JsonFields {
 public:
  // Fails unless `value` is an object.
  static StatusOr<JsonFields> Of(const nlohmann::json& value, std::string where);

  const std::string& where() const { return where_; }
  // The key as messages name it, with the path of the enclosing objects.
  std::string Name(std::string_view key) const;
  std::vector<std::string> Keys() const;

  // Required fields: missing or null is an error.
  StatusOr<int64_t> Int(std::string_view key, IntRange range) const;
  StatusOr<double> Number(std::string_view key, NumberRange range) const;
  StatusOr<std::string> String(std::string_view key) const;
  StatusOr<JsonFields> Object(std::string_view key) const;
  StatusOr<std::vector<int64_t>> IntList(std::string_view key, IntRange range) const;
  StatusOr<std::vector<std::string>> StringList(std::string_view key) const;
  StatusOr<std::map<std::string, std::string>> StringMap(std::string_view key) const;
  // An object-valued field whose messages begin with `where` rather than this object's where
  // and key path: for objects keyed by data, not by field names (a safetensors header's tensor
  // names), where the key path would bury what the message is about.
  StatusOr<JsonFields> Member(std::string_view key, std::string where) const;

  // Optional fields: `fallback` when absent.
  StatusOr<int64_t> IntOr(std::string_view key, int64_t fallback, IntRange range, Null null = Null::kError) const;
  StatusOr<double> NumberOr(std::string_view key, double fallback, NumberRange range,
                            Null null = Null::kError) const;
  StatusOr<bool> BoolOr(std::string_view key, bool fallback, Null null = Null::kError) const;
  StatusOr<std::optional<bool>> OptionalBool(std::string_view key, Null null = Null::kError) const;
  StatusOr<std::optional<std::string>> OptionalString(std::string_view key, Null null = Null::kError) const;
  StatusOr<std::optional<JsonFields>> OptionalObject(std::string_view key, Null null = Null::kError) const;
  // An integer or a list of them (eos_token_id); empty when absent.
  StatusOr<std::vector<int64_t>> IntOrIntList(std::string_view key, IntRange range, Null null = Null::kError) const;

 private:
  JsonFields(const nlohmann::json* object, std::string where, std::string key_prefix)
      : object_(object), where_(std::move(where)), key_prefix_(std::move(key_prefix)) {}
  const nlohmann::json* Find(std::string_view key) const;  // nullptr when absent
  // The value of a required key, or an error when it is missing or null.
  StatusOr<const nlohmann::json*> Required(std::string_view key) const;
  // The value of an optional key; nullptr when absent (or null and null is kAbsent).
  StatusOr<const nlohmann::json*> Optional(std::string_view key, Null null) const;
  Status TypeError(std::string_view key, const nlohmann::json& value, const char* expected) const;
  StatusOr<int64_t> ToInt(std::string_view key, const nlohmann::json& value, IntRange range) const;
  StatusOr<double> ToNumber(std::string_view key, const nlohmann::json& value, NumberRange range) const;

  const nlohmann::json* object_;  // owned by the caller; outlives this view
  std::string where_;
  std::string key_prefix_;
};

}  // namespace bpt
