// The `model` of a Hugging Face tokenizer.json when its type is BPE: a vocabulary and ranked
// merges, applied to one pre-tokenized piece at a time exactly as the tokenizers crate applies
// them (lowest rank first, leftmost among equals), in O(n log n) for a piece of n characters.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "status.h"

namespace bpt::hf {

// std::string keys looked up by string_view without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
using TokenIds = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Bpe {
 public:
  // `spec` is tokenizer.json's "model" object, already known to be of type BPE; `where` names it
  // in messages ("tokenizer.json: model").
  static StatusOr<std::unique_ptr<Bpe>> Parse(const nlohmann::json& spec, const std::string& where);

  // Appends the ids of one piece (valid UTF-8). Fails only when a character needs the
  // unk_token and the vocabulary lacks it.
  Status Tokenize(std::string_view piece, std::vector<int32_t>& ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // nullptr when no token has this id.
  const std::string* IdToToken(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(tokens_.size()) - 1; }
  size_t num_tokens() const { return vocab_.size(); }
  // The most bytes one id's token spells (a piece byte never becomes fewer token bytes), and
  // whether an id may stand for an unbounded run of text (fuse_unk).
  int max_token_bytes() const;
  bool fuses_unknown() const { return fuse_unk_ && unk_token_.has_value(); }
  // Whether no character of a piece is dropped for want of a token: there is an unk_token or
  // all 256 <0xNN> byte tokens.
  bool covers_any_text() const;
  // Whether each of the 256 byte-level characters is a token (so no byte-level piece loses one).
  bool has_byte_level_alphabet() const;

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  TokenIds vocab_;
  std::vector<const std::string*> tokens_;  // by id, into vocab_'s keys; nullptr in gaps
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<std::string> unk_token_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xNN> tokens for byte_fallback; -1 where absent
};

}  // namespace bpt::hf
