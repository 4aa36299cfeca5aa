// Strings as Python sees them: sequences of code points. Template strings are UTF-8; a byte that
// does not start a valid sequence counts as one code point of its own and is kept as it is, so
// indexing, slicing and reversing never lose or invent bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace bpt::jinja {

// Byte offsets of each code point's start, plus s.size() at the end.
std::vector<size_t> CodePointOffsets(std::string_view s);
size_t CodePointCount(std::string_view s);
// The code point at s[pos] (-1 for an invalid byte) and its length in bytes.
char32_t DecodeAt(std::string_view s, size_t pos, size_t* length);
void AppendUtf8(std::string& out, char32_t c);

// The first `needle` in `haystack` at or after `from` (npos if none), and the last one, in time
// linear in the lengths (glibc's memmem; std::string::find is quadratic at worst).
size_t FindBytes(std::string_view haystack, std::string_view needle, size_t from = 0);
size_t RFindBytes(std::string_view haystack, std::string_view needle);

// Python's str.isspace() for one code point.
bool IsPythonSpace(char32_t c);
// str.strip()/lstrip()/rstrip(): chars == nullptr strips Python whitespace.
std::string Strip(std::string_view s, const std::string* chars, bool left, bool right);

// Python's str.upper(), lower(), title(), capitalize() (simple case mapping per code point).
std::string Upper(std::string_view s);
std::string Lower(std::string_view s);
std::string Title(std::string_view s);
std::string Capitalize(std::string_view s);

}  // namespace bpt::jinja
