// The bytes of a stored chunk, the same in every tier: a header naming the model fingerprint,
// the chunk's key and its tokens, the KV payload, a checksum over all of it and, when a tier
// key is configured, an HMAC-SHA256 over that. A chunk is used only when every check passes,
// so a flipped byte, a truncated file, another model's chunk or a forged one is dropped, with
// the reason, and recomputed.
//
//   [header 64 B][tokens: int32 x num_tokens][payload][xxh3-128 checksum 16 B][hmac 32 B, keyed only]
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kv_chunk_key.h"
#include "status.h"

namespace bpt {

// Why a chunk was not used, in the order of kKvChunkDropReasons (the dropped-chunks metric's labels).
enum class ChunkDropReason { kTruncated, kCorrupt, kForeign, kUnauthenticated };
const char* ChunkDropReasonName(ChunkDropReason reason);

// What a chunk must be to be used: the engine's fingerprint, the key asked for and its tokens.
struct ChunkIdentity {
  ChunkKey fingerprint;
  ChunkKey key;
  std::span<const int32_t> tokens;
};

class KvChunkCodec {
 public:
  // hmac_key empty: chunks carry no HMAC and none is required.
  explicit KvChunkCodec(std::string hmac_key) : hmac_key_(std::move(hmac_key)) {}

  bool keyed() const { return !hmac_key_.empty(); }
  // 16 hex digits naming the key without revealing it (an HMAC of a fixed label); "none" unkeyed.
  std::string key_id() const;
  size_t PayloadOffset(size_t num_tokens) const;
  size_t EncodedBytes(size_t num_tokens, size_t payload_bytes) const;
  // Sizes `out` and writes the header and tokens; the caller fills the payload at
  // PayloadOffset (straight from the KV pool, no second copy), then calls Seal.
  void BeginEncode(const ChunkIdentity& identity, size_t payload_bytes, std::vector<uint8_t>* out) const;
  void Seal(std::vector<uint8_t>* chunk) const;

  // The payload of `chunk` when it is whole, authentic and the one `expected` names; otherwise
  // DataLoss, with *reason set.
  StatusOr<std::span<const uint8_t>> Open(std::span<const uint8_t> chunk, const ChunkIdentity& expected,
                                          size_t expected_payload_bytes, ChunkDropReason* reason) const;

 private:
  std::string hmac_key_;
};

}  // namespace bpt
