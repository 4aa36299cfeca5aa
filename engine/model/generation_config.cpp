#include "generation_config.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "json_fields.h"

namespace bpt {
namespace {

constexpr size_t kMaxGenerationConfigBytes = 1 << 20;

}  // namespace

Status MergeGenerationConfig(const std::string& model_dir, ModelConfig* config) {
  const std::string path = model_dir + "/generation_config.json";
  StatusOr<nlohmann::json> j = ReadJsonFile(path, kMaxGenerationConfigBytes);
  if (j.status().code() == StatusCode::kNotFound) return OkStatus();
  if (!j.ok()) return j.status();
  BPT_ASSIGN_OR_RETURN(JsonFields f, JsonFields::Of(*j, path));
  BPT_ASSIGN_OR_RETURN(std::vector<int64_t> ids,
                       f.IntOrIntList("eos_token_id", {0, config->vocab_size - 1}, Null::kAbsent));
  for (int64_t id : ids)
    if (std::find(config->eos_token_ids.begin(), config->eos_token_ids.end(), id) == config->eos_token_ids.end())
      config->eos_token_ids.push_back(static_cast<int>(id));
  return OkStatus();
}

}  // namespace bpt
