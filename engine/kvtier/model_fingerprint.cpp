#include "model_fingerprint.h"

#include <xxhash.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "safetensors.h"

namespace bpt {

StatusOr<ChunkKey> ModelFingerprint(const std::string& model_dir, const std::string& kv_layout) {
  std::ifstream config(model_dir + "/config.json", std::ios::binary);
  if (!config) return NotFound("cannot read " + model_dir + "/config.json for the KV tiers' model fingerprint");
  std::stringstream config_bytes;
  config_bytes << config.rdbuf();
  BPT_ASSIGN_OR_RETURN(auto model, SafetensorsModel::Open(model_dir));

  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  const auto add = [&](const void* data, size_t bytes) {
    const uint64_t size = bytes;  // length-prefixed, so fields cannot run into each other
    XXH3_128bits_update(state, &size, sizeof(size));
    XXH3_128bits_update(state, data, bytes);
  };
  const std::string config_text = config_bytes.str();
  add(config_text.data(), config_text.size());
  add(kv_layout.data(), kv_layout.size());
  constexpr size_t kSample = 4096;
  for (const auto& [name, view] : model->tensors()) {  // std::map: a fixed order
    add(name.data(), name.size());
    const int dtype = static_cast<int>(view.dtype);
    add(&dtype, sizeof(dtype));
    add(view.shape.data(), view.shape.size() * sizeof(int64_t));
    const size_t head = std::min(kSample, view.num_bytes);
    add(view.data, head);
    const size_t tail = std::min(kSample, view.num_bytes - head);
    add(view.data + view.num_bytes - tail, tail);
  }
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return ChunkKey{h.high64, h.low64};
}

}  // namespace bpt
