// The name of a chunk of KV in every tier: a 128-bit hash chained over the chunk's tokens and
// every token before it, rooted in the model fingerprint and a cache salt. Two prompts share a
// chunk's key only when they share every token up to the chunk's end, on the same model, KV
// dtype, block size and chunk size, under the same salt (one tenant's documents never match
// another's).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bpt {

struct ChunkKey {
  uint64_t high = 0;
  uint64_t low = 0;
  bool operator==(const ChunkKey& other) const { return high == other.high && low == other.low; }
  std::string Hex() const;  // 32 lowercase hex digits: file names and Redis keys
};

struct ChunkKeyHash {
  size_t operator()(const ChunkKey& key) const { return static_cast<size_t>(key.low ^ key.high); }
};

// The root of a chain: the model fingerprint with the request's cache salt (empty: none).
ChunkKey RootChunkKey(const ChunkKey& model_fingerprint, std::string_view salt);

// Keys of chunks [0, num_chunks) of `tokens`, chunk_tokens each; tokens must hold them all.
std::vector<ChunkKey> ChainChunkKeys(const ChunkKey& root, std::span<const int32_t> tokens, int chunk_tokens,
                                     int64_t num_chunks);

}  // namespace bpt
