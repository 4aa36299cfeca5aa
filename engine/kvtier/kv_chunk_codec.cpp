#include "kv_chunk_codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "kv_tier_stats.h"

namespace bpt {
namespace {

constexpr char kMagic[8] = {'B', 'P', 'T', 'K', 'V', 'C', '0', '1'};
constexpr uint32_t kFlagHmac = 1;
constexpr size_t kChecksumBytes = 16;
constexpr size_t kHmacBytes = 32;

// Host byte order: chunks are shared only between replicas of one build, which the fingerprint's
// layout version names.
struct ChunkHeader {
  char magic[8];
  uint32_t num_tokens;
  uint32_t flags;
  uint64_t fingerprint_high, fingerprint_low;
  uint64_t key_high, key_low;
  uint64_t payload_bytes;
  uint64_t reserved;
};
static_assert(sizeof(ChunkHeader) == 64);

void Checksum(const uint8_t* data, size_t bytes, uint8_t out[kChecksumBytes]) {
  const XXH128_hash_t h = XXH3_128bits(data, bytes);
  std::memcpy(out, &h.high64, 8);
  std::memcpy(out + 8, &h.low64, 8);
}

void Hmac(const std::string& key, const uint8_t* data, size_t bytes, uint8_t out[kHmacBytes]) {
  unsigned int len = kHmacBytes;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, bytes, out, &len);
}

}  // namespace

const char* ChunkDropReasonName(ChunkDropReason reason) {
  const size_t i = static_cast<size_t>(reason);
  return i < kKvChunkDropReasons.size() ? kKvChunkDropReasons[i] : "?";
}

std::string KvChunkCodec::key_id() const {
  if (!keyed()) return "none";
  static constexpr char kLabel[] = "bptserve kv tier key id";
  uint8_t mac[kHmacBytes];
  Hmac(hmac_key_, reinterpret_cast<const uint8_t*>(kLabel), sizeof(kLabel) - 1, mac);
  char hex[17];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  return hex;
}

size_t KvChunkCodec::PayloadOffset(size_t num_tokens) const { return sizeof(ChunkHeader) + num_tokens * sizeof(int32_t); }

size_t KvChunkCodec::EncodedBytes(size_t num_tokens, size_t payload_bytes) const {
  return PayloadOffset(num_tokens) + payload_bytes + kChecksumBytes + (keyed() ? kHmacBytes : 0);
}

void KvChunkCodec::BeginEncode(const ChunkIdentity& identity, size_t payload_bytes, std::vector<uint8_t>* out) const {
  out->resize(EncodedBytes(identity.tokens.size(), payload_bytes));
  ChunkHeader header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.num_tokens = static_cast<uint32_t>(identity.tokens.size());
  header.flags = keyed() ? kFlagHmac : 0;
  header.fingerprint_high = identity.fingerprint.high;
  header.fingerprint_low = identity.fingerprint.low;
  header.key_high = identity.key.high;
  header.key_low = identity.key.low;
  header.payload_bytes = payload_bytes;
  std::memcpy(out->data(), &header, sizeof(header));
  std::memcpy(out->data() + sizeof(header), identity.tokens.data(), identity.tokens.size_bytes());
}

void KvChunkCodec::Seal(std::vector<uint8_t>* chunk) const {
  const size_t checksum_at = chunk->size() - kChecksumBytes - (keyed() ? kHmacBytes : 0);
  Checksum(chunk->data(), checksum_at, chunk->data() + checksum_at);
  if (keyed()) Hmac(hmac_key_, chunk->data(), checksum_at + kChecksumBytes, chunk->data() + checksum_at + kChecksumBytes);
}

StatusOr<std::span<const uint8_t>> KvChunkCodec::Open(std::span<const uint8_t> chunk, const ChunkIdentity& expected,
                                                      size_t expected_payload_bytes, ChunkDropReason* reason) const {
  const auto drop = [&](ChunkDropReason why, const std::string& what) {
    *reason = why;
    return DataLoss("KV chunk " + expected.key.Hex() + " dropped (" + ChunkDropReasonName(why) + "): " + what);
  };
  if (chunk.size() < sizeof(ChunkHeader)) return drop(ChunkDropReason::kTruncated, "shorter than its header");
  ChunkHeader header;
  std::memcpy(&header, chunk.data(), sizeof(header));
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0) return drop(ChunkDropReason::kCorrupt, "bad magic");
  const bool has_hmac = (header.flags & kFlagHmac) != 0;
  const size_t trailer = kChecksumBytes + (has_hmac ? kHmacBytes : 0);
  // Sizes from the header are checked against the bytes present before anything is added up
  // from them, so a forged size cannot overflow the sum.
  if (header.num_tokens != expected.tokens.size() || header.payload_bytes != expected_payload_bytes) {
    const size_t claimed = PayloadOffset(header.num_tokens) + header.payload_bytes + trailer;
    if (header.num_tokens <= expected.tokens.size() && header.payload_bytes <= expected_payload_bytes &&
        chunk.size() < claimed)
      return drop(ChunkDropReason::kTruncated, "shorter than its header says");
    return drop(ChunkDropReason::kForeign, "another shape of chunk (tokens or payload size)");
  }
  const size_t body = PayloadOffset(header.num_tokens) + header.payload_bytes;
  if (chunk.size() < body + trailer) return drop(ChunkDropReason::kTruncated, "shorter than its header says");
  if (chunk.size() > body + trailer) return drop(ChunkDropReason::kCorrupt, "longer than its header says");
  uint8_t sum[kChecksumBytes];
  Checksum(chunk.data(), body, sum);
  if (std::memcmp(sum, chunk.data() + body, kChecksumBytes) != 0) return drop(ChunkDropReason::kCorrupt, "checksum mismatch");
  if (keyed()) {
    if (!has_hmac) return drop(ChunkDropReason::kUnauthenticated, "no HMAC, and a tier key is configured");
    uint8_t mac[kHmacBytes];
    Hmac(hmac_key_, chunk.data(), body + kChecksumBytes, mac);
    if (CRYPTO_memcmp(mac, chunk.data() + body + kChecksumBytes, kHmacBytes) != 0)
      return drop(ChunkDropReason::kUnauthenticated, "HMAC mismatch");
  }
  if (ChunkKey{header.fingerprint_high, header.fingerprint_low} != expected.fingerprint)
    return drop(ChunkDropReason::kForeign, "another model's fingerprint");
  if (ChunkKey{header.key_high, header.key_low} != expected.key ||
      std::memcmp(chunk.data() + sizeof(header), expected.tokens.data(), expected.tokens.size_bytes()) != 0)
    return drop(ChunkDropReason::kForeign, "another chunk's key or tokens");
  return chunk.subspan(PayloadOffset(header.num_tokens), header.payload_bytes);
}

}  // namespace bpt
