#include "kv_chunk_key.h"

#include <xxhash.h>

#include <cstdio>

namespace bpt {
namespace {

ChunkKey FromXxh(XXH128_hash_t h) { return {h.high64, h.low64}; }

// A chained hash: the parent's 16 bytes, then the data, so a key covers everything before it.
ChunkKey HashAfter(const ChunkKey& parent, const void* data, size_t bytes) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  const uint64_t parent_words[2] = {parent.high, parent.low};
  XXH3_128bits_update(state, parent_words, sizeof(parent_words));
  XXH3_128bits_update(state, data, bytes);
  const ChunkKey key = FromXxh(XXH3_128bits_digest(state));
  XXH3_freeState(state);
  return key;
}

}  // namespace

std::string ChunkKey::Hex() const {
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(high),
                static_cast<unsigned long long>(low));
  return buf;
}

ChunkKey RootChunkKey(const ChunkKey& model_fingerprint, std::string_view salt) {
  return HashAfter(model_fingerprint, salt.data(), salt.size());
}

std::vector<ChunkKey> ChainChunkKeys(const ChunkKey& root, std::span<const int32_t> tokens, int chunk_tokens,
                                     int64_t num_chunks) {
  std::vector<ChunkKey> keys;
  keys.reserve(num_chunks);
  ChunkKey parent = root;
  for (int64_t c = 0; c < num_chunks; ++c) {
    parent = HashAfter(parent, tokens.data() + c * chunk_tokens, chunk_tokens * sizeof(int32_t));
    keys.push_back(parent);
  }
  return keys;
}

}  // namespace bpt
