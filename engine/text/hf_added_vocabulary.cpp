#include "hf_added_vocabulary.h"

#include <algorithm>

#include "hf_unicode.h"

namespace bpt::hf {
namespace {

// The code point that ends text[0, end) (valid UTF-8, end > 0) and where it begins.
char32_t PreviousCodePoint(std::string_view text, size_t end, size_t& begin) {
  begin = end - 1;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  size_t i = begin;
  return NextCodePoint(text, i);
}

}  // namespace

void AddedVocabulary::Trie::Insert(std::string_view pattern, uint32_t token_index) {
  if (!pattern.empty()) starts[static_cast<unsigned char>(pattern[0])] = true;
  uint32_t node = 0;
  for (unsigned char c : pattern) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | c;
    const auto it = next.find(key);
    if (it != next.end()) {
      node = it->second;
      continue;
    }
    const uint32_t child = static_cast<uint32_t>(accept.size());
    accept.push_back(0);
    next.emplace(key, child);
    node = child;
  }
  // Two tokens of the same search form (after normalization): the first is found.
  if (accept[node] == 0) accept[node] = token_index + 1;
}

std::pair<size_t, uint32_t> AddedVocabulary::Trie::LongestAt(std::string_view text, size_t pos) const {
  std::pair<size_t, uint32_t> best{0, 0};
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto it = next.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[i]));
    if (it == next.end()) break;
    node = it->second;
    if (accept[node] != 0) best = {i + 1 - pos, accept[node]};
  }
  return best;
}

StatusOr<AddedVocabulary> AddedVocabulary::Create(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  AddedVocabulary vocab;
  vocab.tokens_ = std::move(tokens);
  bool any_single_word = false;
  for (size_t i = 0; i < vocab.tokens_.size(); ++i) {
    const AddedToken& t = vocab.tokens_[i];
    vocab.decoded_forms_.push_back(t.normalized && normalizer != nullptr ? normalizer->Normalize(t.content) : t.content);
    // An empty token would match everywhere; the crate never adds one.
    if (t.content.empty()) continue;
    any_single_word |= t.single_word;
    if (!t.normalized) {
      vocab.raw_.Insert(t.content, static_cast<uint32_t>(i));
      vocab.longest_match_ = std::max(vocab.longest_match_, t.content.size());
      continue;
    }
    const std::string& form = vocab.decoded_forms_[i];
    if (!form.empty()) vocab.normalized_.Insert(form, static_cast<uint32_t>(i));
    vocab.longest_match_ = std::max(vocab.longest_match_, form.size());
  }
  if (any_single_word) {
    BPT_ASSIGN_OR_RETURN(Regex word_char, Regex::Compile("\\w", "the single_word test"));
    vocab.word_char_.emplace(std::move(word_char));
  }
  return vocab;
}

const AddedToken* AddedVocabulary::Find(std::string_view content) const {
  for (const AddedToken& t : tokens_)
    if (t.content == content) return &t;
  return nullptr;
}

void AddedVocabulary::Split(std::string_view text, bool normalized, std::vector<TextSegment>& segments) const {
  const Trie& trie = normalized ? normalized_ : raw_;
  const auto is_word_char = [&](size_t begin, size_t end) {
    bool found = false;
    word_char_->ForEachMatch(text.substr(begin, end - begin), [&](size_t, size_t) { found = true; });
    return found;
  };
  size_t emitted = 0;  // text before this is in segments
  for (size_t pos = 0; pos < text.size() && !trie.next.empty();) {
    if (!trie.starts[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const auto [length, index] = trie.LongestAt(text, pos);
    if (length == 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index - 1];
    size_t start = pos;
    size_t stop = pos + length;
    pos = stop;  // the search resumes after a match, kept or not
    if (token.single_word) {
      size_t char_begin = 0;
      const bool word_before = start > 0 && (PreviousCodePoint(text, start, char_begin), is_word_char(char_begin, start));
      size_t char_end = stop;
      if (stop < text.size()) NextCodePoint(text, char_end);
      const bool word_after = stop < text.size() && is_word_char(stop, char_end);
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      size_t begin = start;
      while (begin > emitted) {
        size_t char_begin = 0;
        if (!IsWhiteSpace(PreviousCodePoint(text, begin, char_begin))) break;
        begin = char_begin;
      }
      start = begin;
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t after = stop;
        if (!IsWhiteSpace(NextCodePoint(text, after))) break;
        stop = after;
      }
      pos = stop;
    }
    if (emitted < start) segments.push_back({emitted, start, -1});
    segments.push_back({start, stop, token.id});
    emitted = stop;
  }
  if (emitted < text.size()) segments.push_back({emitted, text.size(), -1});
}

}  // namespace bpt::hf
