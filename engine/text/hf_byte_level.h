// GPT-2's byte-level alphabet (bytes_to_unicode in OpenAI's encoder.py, HF's ByteLevel): each of
// the 256 bytes written as one printable character, so that byte-level BPE vocabularies hold only
// printable strings. The printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves
// (as code points); the other 68 bytes, in order, become U+0100..U+0143 (space is U+0120 'Ġ').
#pragma once

#include <string>
#include <string_view>

namespace bpt::hf {

// Every byte of `bytes` (any bytes, not necessarily UTF-8) as its character, UTF-8 encoded.
std::string BytesToByteLevelChars(std::string_view bytes);
// Appends the same to `out`, for callers that reuse a buffer.
void AppendByteLevelChars(std::string_view bytes, std::string& out);

// The inverse: each character of `text` (valid UTF-8) that is in the alphabet becomes its byte;
// one that is not is kept as its UTF-8 bytes.
std::string ByteLevelCharsToBytes(std::string_view text);

}  // namespace bpt::hf
