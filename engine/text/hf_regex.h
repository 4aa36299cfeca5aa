// The regexes of a Hugging Face tokenizer.json (Split's and Replace's "pattern", ByteLevel's
// GPT-2 pattern), run by PCRE2 as HF's Python wheel runs them with Oniguruma: UTF-8 with Unicode
// properties (\p{L}, \p{N}), leftmost-first alternation, lookahead, case-insensitive groups, JIT
// compiled. Where the two syntaxes differ on the patterns tokenizer.json files carry, the pattern
// is rewritten to Oniguruma's meaning (see Regex::Compile).
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "status.h"

struct pcre2_real_code_8;

namespace bpt::hf {

class Regex {
 public:
  // `pattern` is in Oniguruma syntax as tokenizer.json writes it. Oniguruma's meanings are kept
  // where PCRE2's differ: \s and \S are Unicode White_Space (PCRE2's also take U+180E), \h and \H
  // are hex digits (PCRE2's are horizontal space), ^ and $ match at every line, `.` stops only at
  // \n. Known remaining difference: \w is PCRE2's (letters, numbers, '_'), Oniguruma's also takes
  // marks. A pattern PCRE2 refuses is InvalidArgument naming `where` and PCRE2's message.
  static StatusOr<Regex> Compile(std::string_view pattern, const std::string& where);
  // Matches `text` exactly (every character literal).
  static StatusOr<Regex> Literal(std::string_view text, const std::string& where);

  // Calls on_match(start, end) (byte offsets into `text`, valid UTF-8) for each match, in order,
  // as Oniguruma's find_iter gives them: the search resumes at the previous match's end, and an
  // empty match where the previous match ended is skipped (the search moves one character on).
  // Safe from several threads at once. A match that PCRE2 abandons (its resource limits) ends the
  // iteration, as HF's SysRegex stops at an error.
  template <typename OnMatch>
  void ForEachMatch(std::string_view text, OnMatch&& on_match) const {
    size_t search_from = 0;
    size_t last_end = kNoMatchYet;
    size_t start = 0;
    size_t end = 0;
    while (search_from <= text.size() && Find(text, search_from, start, end)) {
      if (start == end && end == last_end) {
        search_from = end + CharLengthAt(text, end);
        continue;
      }
      on_match(start, end);
      search_from = end;
      last_end = end;
    }
  }

 private:
  static constexpr size_t kNoMatchYet = static_cast<size_t>(-1);
  struct CodeDeleter {
    void operator()(pcre2_real_code_8* code) const;
  };

  explicit Regex(pcre2_real_code_8* code) : code_(code) {}
  bool Find(std::string_view text, size_t from, size_t& start, size_t& end) const;
  // 1 past the end, so that the search stops.
  static size_t CharLengthAt(std::string_view text, size_t at);

  std::unique_ptr<pcre2_real_code_8, CodeDeleter> code_;
};

// tokenizer.json's pattern object: {"String": "..."} (literal) or {"Regex": "..."}. `where` is
// its path ("pre_tokenizer.pattern").
StatusOr<Regex> ParsePattern(const nlohmann::json& spec, const std::string& where);

}  // namespace bpt::hf
