#include "hf_byte_level.h"

#include <array>
#include <cstdint>

namespace bpt::hf {
namespace {

constexpr char32_t kAlphabetEnd = 0x144;

constexpr bool StandsForItself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

struct Tables {
  // The character of each byte as UTF-8: one or two bytes, since every code point is below 0x800.
  std::array<std::array<char, 2>, 256> utf8{};
  std::array<uint8_t, 256> utf8_length{};
  // Code point -> byte, or -1 outside the alphabet.
  std::array<int16_t, kAlphabetEnd> byte_of{};
};

constexpr Tables MakeTables() {
  Tables t{};
  for (auto& b : t.byte_of) b = -1;
  char32_t next_shifted = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const char32_t cp = StandsForItself(byte) ? static_cast<char32_t>(byte) : next_shifted++;
    t.byte_of[cp] = static_cast<int16_t>(byte);
    if (cp < 0x80) {
      t.utf8[byte] = {static_cast<char>(cp), 0};
      t.utf8_length[byte] = 1;
    } else {
      t.utf8[byte] = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
      t.utf8_length[byte] = 2;
    }
  }
  return t;
}

constexpr Tables kTables = MakeTables();

}  // namespace

void AppendByteLevelChars(std::string_view bytes, std::string& out) {
  const size_t old_size = out.size();
  out.resize(old_size + 2 * bytes.size());
  char* p = out.data() + old_size;
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    p[0] = kTables.utf8[b][0];
    p[1] = kTables.utf8[b][1];
    p += kTables.utf8_length[b];
  }
  out.resize(static_cast<size_t>(p - out.data()));
}

std::string BytesToByteLevelChars(std::string_view bytes) {
  std::string out;
  AppendByteLevelChars(bytes, out);
  return out;
}

std::string ByteLevelCharsToBytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      // ASCII in the alphabet stands for itself, and ASCII outside it is kept: the same byte.
      out += text[i++];
      continue;
    }
    if (lead < 0xE0 && i + 1 < text.size()) {
      const char32_t cp = (static_cast<char32_t>(lead & 0x1F) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3F);
      if (cp < kAlphabetEnd && kTables.byte_of[cp] >= 0) {
        out += static_cast<char>(kTables.byte_of[cp]);
        i += 2;
        continue;
      }
    }
    const size_t length = lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

}  // namespace bpt::hf
