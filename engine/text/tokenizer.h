// A SentencePiece tokenizer, reached through the dlopen()ed shim (see engine/text/spm_shim.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

struct bpt_spm;

namespace bpt {

class Tokenizer {
 public:
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  int vocab_size() const { return vocab_size_; }
  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }

  static constexpr size_t kNoLimit = SIZE_MAX;
  static constexpr size_t kChunkBytes = 64 * 1024;

  // Encodes without BOS; the engine adds it as the model's config says. Stops with
  // InvalidArgument as soon as the text is known to need more than max_ids ids: where the model
  // allows it (splits_before_spaces), the text is encoded chunk_bytes at a time, cut before
  // spaces, with exactly the ids of encoding it whole.
  // bytes_encoded, when given, tells how much of the text the model went through before the
  // answer (0 for a refusal up front).
  StatusOr<std::vector<int32_t>> Encode(std::string_view text, size_t max_ids = kNoLimit,
                                        size_t chunk_bytes = kChunkBytes, size_t* bytes_encoded = nullptr) const;
  // A text of n bytes needs at least n / max_piece_bytes() ids; 0 when the model gives no such
  // bound.
  int max_piece_bytes() const { return max_piece_bytes_; }
  bool splits_before_spaces() const { return splits_before_spaces_; }
  // InvalidArgument naming the id when one is outside the vocabulary.
  StatusOr<std::string> Decode(std::span<const int32_t> ids) const;

  struct Api;  // the shim's entry points, resolved once per process

 private:
  Tokenizer(const Api* api, bpt_spm* handle);
  StatusOr<std::vector<int32_t>> EncodeWhole(std::string_view text) const;

  const Api* api_;
  bpt_spm* handle_;
  int vocab_size_;
  int bos_id_;
  int eos_id_;
  int max_piece_bytes_;
  bool splits_before_spaces_;
  std::vector<int32_t> continuation_prefix_;  // the ids of kContinuationPrefix, encoded alone
};

}  // namespace bpt
