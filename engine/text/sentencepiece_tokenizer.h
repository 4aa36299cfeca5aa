// A SentencePiece tokenizer.model, reached through the dlopen()ed shim (see engine/text/spm_shim.h).
#pragma once

#include "tokenizer.h"

struct bpt_spm;

namespace bpt {

class SentencePieceTokenizer : public Tokenizer {
 public:
  static constexpr size_t kChunkBytes = 64 * 1024;

  // tokenizer_config's eos_token, when it names a piece, is the EOS; else the model's own.
  static StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(const std::string& model_path,
                                                                 const TokenizerConfig& config = {});
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  int vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  std::span<const int32_t> prefix_ids() const override { return prefix_; }
  std::span<const int32_t> suffix_ids() const override { return {}; }
  StatusOr<std::vector<int32_t>> Encode(std::string_view text, size_t max_ids = kNoLimit,
                                        size_t* bytes_encoded = nullptr) const override {
    return EncodeInChunks(text, max_ids, kChunkBytes, bytes_encoded);
  }
  // skip_special_tokens changes nothing SentencePiece's own decoding keeps: it drops control
  // pieces already; <unk> is the one special piece with text (" ⁇ ").
  StatusOr<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  bool IsSpecial(int32_t id) const override;
  int max_piece_bytes() const override { return max_piece_bytes_; }

  // Where the model allows it (splits_before_spaces), the text is encoded chunk_bytes at a time,
  // cut before spaces, with exactly the ids of encoding it whole.
  StatusOr<std::vector<int32_t>> EncodeInChunks(std::string_view text, size_t max_ids, size_t chunk_bytes,
                                                size_t* bytes_encoded) const;
  std::optional<int32_t> bos_id() const { return bos_id_; }
  bool splits_before_spaces() const { return splits_before_spaces_; }

  struct Api;  // the shim's entry points, resolved once per process

 private:
  SentencePieceTokenizer(const Api* api, bpt_spm* handle, const TokenizerConfig& config);
  StatusOr<std::vector<int32_t>> EncodeWhole(std::string_view text) const;

  const Api* api_;
  bpt_spm* handle_;
  int vocab_size_;
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
  std::vector<int32_t> prefix_;
  int max_piece_bytes_;
  bool splits_before_spaces_;
  std::vector<int32_t> continuation_prefix_;  // the ids of kContinuationPrefix, encoded alone
};

}  // namespace bpt
