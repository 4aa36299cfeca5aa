// A Hugging Face tokenizer.json, encoded and decoded as AutoTokenizer.from_pretrained(dir) does
// (transformers 5, the fast tokenizer): added tokens found in the text, then the normalizer, the
// pre-tokenizer and the BPE model on what is between them; the post-processor's special tokens
// around a prompt; the decoder for text. tokenizer_config.json's bos/eos tokens act as
// transformers makes them act.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "hf_added_vocabulary.h"
#include "hf_bpe.h"
#include "hf_decoder.h"
#include "hf_normalizer.h"
#include "hf_pre_tokenizer.h"
#include "tokenizer.h"

namespace bpt {

class HfTokenizer : public Tokenizer {
 public:
  // Every error names `path` and the component at fault by its path in the file.
  static StatusOr<std::unique_ptr<HfTokenizer>> Load(const std::string& path, const TokenizerConfig& config);
  // The same from the file's text; `source` names it in messages.
  static StatusOr<std::unique_ptr<HfTokenizer>> Parse(std::string_view json_text, const std::string& source,
                                                      const TokenizerConfig& config);

  int vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  std::span<const int32_t> prefix_ids() const override { return prefix_; }
  std::span<const int32_t> suffix_ids() const override { return suffix_; }
  // bytes_encoded: the end of the last stretch between added tokens that went through the
  // normalizer and pre-tokenizer (they see such a stretch whole).
  StatusOr<std::vector<int32_t>> Encode(std::string_view text, size_t max_ids = kNoLimit,
                                        size_t* bytes_encoded = nullptr) const override;
  StatusOr<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  bool IsSpecial(int32_t id) const override {
    return id >= 0 && id < vocab_size_ && special_[static_cast<size_t>(id)];
  }
  int max_piece_bytes() const override { return max_piece_bytes_; }

 private:
  class WordCache;
  HfTokenizer() = default;
  Status EncodeStretch(std::string_view text, bool at_text_start, WordCache& cache, std::vector<int32_t>& ids,
                       size_t max_ids) const;
  std::optional<int32_t> TokenToId(std::string_view token) const;

  std::unique_ptr<hf::Normalizer> normalizer_;
  std::unique_ptr<hf::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<hf::Bpe> model_;
  std::unique_ptr<hf::Decoder> decoder_;
  hf::AddedVocabulary added_;
  std::vector<int32_t> added_by_id_;  // index into added_.tokens(), -1 for model tokens
  std::vector<bool> special_;
  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
  std::optional<int32_t> eos_id_;
  int vocab_size_ = 0;
  int max_piece_bytes_ = 0;
};

}  // namespace bpt
