// The character tests HF's tokenizers crate applies one code point at a time (Rust's
// char::is_whitespace and char::is_numeric, its punctuation and combining-mark tests), and UTF-8
// stepping. Categories come from utf8proc (Unicode 15 in Debian 12's 2.8); the crate's tables
// are of their crates' own Unicode versions, so characters assigned since may differ.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bpt::hf {

// The code point at text[i] (valid UTF-8); advances i past it.
char32_t NextCodePoint(std::string_view text, size_t& i);
void AppendUtf8(char32_t cp, std::string& out);

// Unicode White_Space, as char::is_whitespace.
bool IsWhiteSpace(char32_t cp);
// General category N (Nd, Nl, No), as char::is_numeric.
bool IsNumeric(char32_t cp);
// ASCII punctuation (which takes in symbols such as '$' and '+') or general category P, as the
// Punctuation and BertPreTokenizer pre-tokenizers test.
bool IsPunctuation(char32_t cp);
// General category M (Mn, Mc, Me), the marks StripAccents removes.
bool IsCombiningMark(char32_t cp);

}  // namespace bpt::hf
