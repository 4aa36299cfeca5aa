// What a model's KV depends on, hashed, so that a chunk computed by one model is never used by
// another: config.json, every tensor's name, dtype, shape and the first and last 4 KiB of its
// data (a fine-tune or a merged adapter changes them; reading all weights would cost a pass
// over them at every start), and the caller's description of how KV is computed and laid out
// (device, kernels, dtypes, block and chunk size, layout version).
#pragma once

#include <string>

#include "kv_chunk_key.h"
#include "status.h"

namespace bpt {

StatusOr<ChunkKey> ModelFingerprint(const std::string& model_dir, const std::string& kv_layout);

}  // namespace bpt
