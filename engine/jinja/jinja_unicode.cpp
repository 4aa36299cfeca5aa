#include "jinja_unicode.h"

#include <cstring>

#include <utf8proc.h>

namespace bpt::jinja {

size_t FindBytes(std::string_view haystack, std::string_view needle, size_t from) {
  if (from > haystack.size()) return std::string_view::npos;
  if (needle.empty()) return from;
  const void* hit = memmem(haystack.data() + from, haystack.size() - from, needle.data(), needle.size());
  return hit == nullptr ? std::string_view::npos : static_cast<size_t>(static_cast<const char*>(hit) - haystack.data());
}

size_t RFindBytes(std::string_view haystack, std::string_view needle) {
  // The first hit in both reversed is the last one forward.
  const std::string h(haystack.rbegin(), haystack.rend()), n(needle.rbegin(), needle.rend());
  const size_t hit = FindBytes(h, n);
  return hit == std::string_view::npos ? hit : haystack.size() - hit - needle.size();
}

char32_t DecodeAt(std::string_view s, size_t pos, size_t* length) {
  utf8proc_int32_t c = -1;
  const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + pos),
                                              static_cast<utf8proc_ssize_t>(s.size() - pos), &c);
  if (n <= 0) {
    *length = 1;
    return static_cast<char32_t>(-1);
  }
  *length = static_cast<size_t>(n);
  return static_cast<char32_t>(c);
}

std::vector<size_t> CodePointOffsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (size_t pos = 0; pos < s.size();) {
    offsets.push_back(pos);
    size_t n;
    DecodeAt(s, pos, &n);
    pos += n;
  }
  offsets.push_back(s.size());
  return offsets;
}

size_t CodePointCount(std::string_view s) {
  size_t count = 0;
  for (size_t pos = 0; pos < s.size(); ++count) {
    size_t n;
    DecodeAt(s, pos, &n);
    pos += n;
  }
  return count;
}

void AppendUtf8(std::string& out, char32_t c) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

std::string Strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<char32_t> set;
  if (chars != nullptr) {
    for (size_t pos = 0; pos < chars->size();) {
      size_t n;
      set.push_back(DecodeAt(*chars, pos, &n));
      pos += n;
    }
  }
  auto strippable = [&](char32_t c) {
    if (chars == nullptr) return IsPythonSpace(c);
    for (char32_t x : set)
      if (x == c) return true;
    return false;
  };
  const std::vector<size_t> offsets = CodePointOffsets(s);
  size_t begin = 0, end = offsets.size() - 1;  // code point indices
  size_t n;
  if (left)
    while (begin < end && strippable(DecodeAt(s, offsets[begin], &n))) ++begin;
  if (right)
    while (end > begin && strippable(DecodeAt(s, offsets[end - 1], &n))) --end;
  return std::string(s.substr(offsets[begin], offsets[end] - offsets[begin]));
}

namespace {

template <typename Map>
std::string MapCodePoints(std::string_view s, Map map) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    size_t n;
    const char32_t c = DecodeAt(s, pos, &n);
    if (c == static_cast<char32_t>(-1))
      out.append(s.substr(pos, n));
    else
      AppendUtf8(out, map(c));
    pos += n;
  }
  return out;
}

char32_t ToUpper(char32_t c) { return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }
char32_t ToLower(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }
char32_t ToTitle(char32_t c) { return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))); }

// Python's "cased" characters: those with case mappings (a letter that title() changes).
bool IsCased(char32_t c) { return ToUpper(c) != c || ToLower(c) != c || ToTitle(c) != c; }

}  // namespace

std::string Upper(std::string_view s) { return MapCodePoints(s, ToUpper); }
std::string Lower(std::string_view s) { return MapCodePoints(s, ToLower); }

std::string Title(std::string_view s) {
  bool previous_cased = false;
  return MapCodePoints(s, [&](char32_t c) {
    const char32_t mapped = previous_cased ? ToLower(c) : ToTitle(c);
    previous_cased = IsCased(c);
    return mapped;
  });
}

std::string Capitalize(std::string_view s) {
  bool first = true;
  return MapCodePoints(s, [&](char32_t c) {
    const char32_t mapped = first ? ToTitle(c) : ToLower(c);
    first = false;
    return mapped;
  });
}

}  // namespace bpt::jinja
