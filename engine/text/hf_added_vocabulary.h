// The added tokens of a Hugging Face tokenizer.json ("added_tokens", and the special tokens
// transformers adds from tokenizer_config.json), found in text before the model runs, as the
// tokenizers crate's AddedVocabulary finds them: leftmost-longest, non-normalized tokens in the
// raw text, normalized ones in the normalized text, with single_word, lstrip and rstrip.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hf_normalizer.h"
#include "hf_regex.h"

namespace bpt::hf {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
};

// A stretch [begin, end) of the text searched: an added token's id, or -1 for text between them.
struct TextSegment {
  size_t begin;
  size_t end;
  int32_t id;
};

class AddedVocabulary {
 public:
  // `normalizer` (may be null) gives the normalized tokens the form they are searched in.
  static StatusOr<AddedVocabulary> Create(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // The segments of `text` (non-empty ones only), by the tokens of the normalized or the
  // non-normalized kind.
  void Split(std::string_view text, bool normalized, std::vector<TextSegment>& segments) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // What the decoder gets for tokens()[index]: a normalized token's normalized form, which is
  // what the crate's decode hands its decoder (simple_id_to_token), else the content.
  const std::string& DecodedForm(size_t index) const { return decoded_forms_[index]; }
  const AddedToken* Find(std::string_view content) const;
  // The most bytes a match spans (a normalized token's normalized form may outgrow its content).
  size_t longest_match() const { return longest_match_; }

 private:
  // A byte trie of the tokens' search forms: node -> (byte -> node); accept[node]: index+1 in
  // tokens_ of the token ending there, 0 for none.
  struct Trie {
    std::unordered_map<uint64_t, uint32_t> next;
    std::vector<uint32_t> accept{0};
    bool starts[256] = {};  // bytes some pattern begins with: the rest is skipped at once
    void Insert(std::string_view pattern, uint32_t token_index);
    // The longest pattern at text[pos...]: its length and token index+1, or {0, 0}.
    std::pair<size_t, uint32_t> LongestAt(std::string_view text, size_t pos) const;
  };

  std::vector<AddedToken> tokens_;
  std::vector<std::string> decoded_forms_;  // one per token
  Trie raw_;
  Trie normalized_;
  std::optional<Regex> word_char_;  // \w, for single_word
  size_t longest_match_ = 0;
};

}  // namespace bpt::hf
