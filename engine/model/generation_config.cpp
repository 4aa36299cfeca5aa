#include "generation_config.h"

#include <cstdint>

#include "json_fields.h"

namespace bpt {
namespace {

constexpr size_t kMaxGenerationConfigBytes = 1 << 20;
// The ranges ValidateSamplingParams then narrows; these only keep the casts below defined.
constexpr NumberRange kAnyFloat{-1e30, 1e30};

}  // namespace

StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& model_dir, int vocab_size) {
  const std::string path = model_dir + "/generation_config.json";
  GenerationConfig g;
  StatusOr<nlohmann::json> j = ReadJsonFile(path, kMaxGenerationConfigBytes);
  if (j.status().code() == StatusCode::kNotFound) return g;
  if (!j.ok()) return j.status();
  BPT_ASSIGN_OR_RETURN(JsonFields f, JsonFields::Of(*j, path));
  BPT_ASSIGN_OR_RETURN(std::vector<int64_t> ids, f.IntOrIntList("eos_token_id", {0, vocab_size - 1}, Null::kAbsent));
  for (int64_t id : ids) g.eos_token_ids.push_back(static_cast<int>(id));

  // transformers writes null for a field it leaves to its own default: the same as absent.
  SamplingParams& s = g.sampling;
  BPT_ASSIGN_OR_RETURN(const double temperature, f.NumberOr("temperature", s.temperature, kAnyFloat, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(const int64_t top_k, f.IntOr("top_k", s.top_k, {0, vocab_size}, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(const double top_p, f.NumberOr("top_p", s.top_p, kAnyFloat, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(const double min_p, f.NumberOr("min_p", s.min_p, kAnyFloat, Null::kAbsent));
  BPT_ASSIGN_OR_RETURN(const double repetition_penalty,
                       f.NumberOr("repetition_penalty", s.repetition_penalty, kAnyFloat, Null::kAbsent));
  s.temperature = static_cast<float>(temperature);
  s.top_k = static_cast<int>(top_k);
  s.top_p = static_cast<float>(top_p);
  s.min_p = static_cast<float>(min_p);
  s.repetition_penalty = static_cast<float>(repetition_penalty);
  const Status valid = ValidateSamplingParams(s);
  if (!valid.ok()) return InvalidArgument(path + ": " + valid.message());
  return g;
}

}  // namespace bpt
