#include "hf_decoder.h"

#include <algorithm>

#include "hf_byte_level.h"
#include "hf_regex.h"
#include "hf_spec_fields.h"
#include "hf_unicode.h"

namespace bpt::hf {
namespace {

using nlohmann::json;

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

void ReplaceAll(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t begin = 0;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, begin)) {
    out.append(s, begin, at - begin);
    out.append(to);
    begin = at + from.size();
  }
  if (begin == 0) return;
  out.append(s, begin);
  s = std::move(out);
}

// The code points of a token (valid UTF-8).
std::vector<char32_t> CodePoints(std::string_view token) {
  std::vector<char32_t> cps;
  for (size_t i = 0; i < token.size();) cps.push_back(NextCodePoint(token, i));
  return cps;
}

bool InByteLevelAlphabet(char32_t cp) {
  return (cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0x143);
}

class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      // A token with a character outside the alphabet is kept whole, as the crate keeps it.
      const std::vector<char32_t> cps = CodePoints(token);
      if (std::all_of(cps.begin(), cps.end(), InByteLevelAlphabet)) bytes += ByteLevelCharsToBytes(token);
      else bytes += token;
    }
    tokens.assign(1, Utf8Lossy(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool strip_first) : replacement_(replacement), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      for (char32_t cp : CodePoints(tokens[i])) {
        // The first token loses every replacement character, not just a leading one, as in the crate.
        if (cp == replacement_) {
          if (i != 0 || !strip_first_) out += ' ';
        } else {
          AppendUtf8(cp, out);
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

// <0xNN>: u8::from_str_radix(NN, 16), which also takes "+N".
int ByteOfToken(std::string_view t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
  const auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  if (t[3] == '+') return hex(t[4]);
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Lossy decoding changes exactly the invalid texts.
bool IsValidUtf8(std::string_view bytes) { return Utf8Lossy(bytes) == bytes; }

class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    const auto flush = [&] {
      if (pending.empty()) return;
      if (IsValidUtf8(pending)) out.push_back(pending);
      else out.insert(out.end(), pending.size(), std::string(kReplacementChar));
      pending.clear();
    };
    for (std::string& token : tokens) {
      const int byte = ByteOfToken(token);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        continue;
      }
      flush();
      out.push_back(std::move(token));
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      const std::vector<char32_t> cps = CodePoints(token);
      size_t begin = 0;
      while (begin < std::min(start_, cps.size()) && cps[begin] == content_) ++begin;
      size_t end = cps.size();
      // The crate panics where stop reaches past the start; here the token just empties.
      for (size_t i = 0; i < stop_ && end > begin && cps[end - 1] == content_; ++i) --end;
      std::string out;
      for (size_t i = begin; i < end; ++i) AppendUtf8(cps[i], out);
      token = std::move(out);
    }
  }

 private:
  char32_t content_;
  size_t start_;
  size_t stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string out;
      size_t kept = 0;
      pattern_.ForEachMatch(token, [&](size_t start, size_t end) {
        out.append(token, kept, start - kept);
        out += content_;
        kept = end;
      });
      out.append(token, kept);
      token = std::move(out);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

// transformers' and the crate's WordPiece clean-up of spaces before punctuation.
void CleanUpSpaces(std::string& s) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},   {" ?", "?"},   {" !", "!"},   {" ,", ","},         {" ' ", "'"},  {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) ReplaceAll(s, from, to);
}

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.starts_with(prefix_)) t.erase(0, prefix_.size());
        else t = " " + t;
      }
      if (cleanup_) CleanUpSpaces(t);
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens.size(); ++i) ReplaceAll(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> decoders) : decoders_(std::move(decoders)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (const auto& d : decoders_) d->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> decoders_;
};

// A field holding one character (Metaspace's replacement, Strip's content).
StatusOr<char32_t> CharField(const json& spec, std::string_view key, const std::string& where,
                             std::optional<std::string> fallback = std::nullopt) {
  BPT_ASSIGN_OR_RETURN(std::string text, StringField(spec, key, where, std::move(fallback)));
  const std::vector<char32_t> cps = CodePoints(text);
  if (cps.size() != 1) return InvalidArgument(FieldPath(where, key) + ": expected one character, got '" + text + "'");
  return cps[0];
}

StatusOr<size_t> CountField(const json& spec, std::string_view key, const std::string& where) {
  BPT_ASSIGN_OR_RETURN(const json* value, RequiredField(spec, key, where));
  if (!value->is_number_unsigned() || value->get<uint64_t>() > (1u << 20))
    return InvalidArgument(FieldPath(where, key) + ": expected a count in [0, 1048576]");
  return static_cast<size_t>(value->get<uint64_t>());
}

// Metaspace drops the first token's replacement characters unless it never prepends one.
StatusOr<bool> MetaspaceStripsFirst(const json& spec, const std::string& where) {
  if (spec.contains("prepend_scheme")) {
    BPT_ASSIGN_OR_RETURN(std::string scheme, StringField(spec, "prepend_scheme", where));
    if (scheme != "always" && scheme != "first" && scheme != "never")
      return InvalidArgument(FieldPath(where, "prepend_scheme") + ": '" + scheme + "' is not always, first or never");
    return scheme != "never";
  }
  // Files from before prepend_scheme say add_prefix_space.
  return BoolField(spec, "add_prefix_space", where, true);
}

}  // namespace

namespace {

// The well-formed UTF-8 sequence at bytes[i] (i < size): its length, or 0 when it is not one,
// with `consumed` the length of its maximal invalid prefix (Unicode's table of well-formed bytes).
size_t SequenceAt(std::string_view bytes, size_t i, size_t& consumed) {
  const auto in = [](unsigned char c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; };
  const unsigned char b0 = bytes[i];
  consumed = 1;
  if (b0 < 0x80) return 1;
  size_t need = 0;
  unsigned lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (in(b0, 0xC2, 0xDF)) need = 2;
  else if (b0 == 0xE0) need = 3, lo = 0xA0;
  else if (in(b0, 0xE1, 0xEC) || in(b0, 0xEE, 0xEF)) need = 3;
  else if (b0 == 0xED) need = 3, hi = 0x9F;
  else if (b0 == 0xF0) need = 4, lo = 0x90;
  else if (in(b0, 0xF1, 0xF3)) need = 4;
  else if (b0 == 0xF4) need = 4, hi = 0x8F;
  else return 0;
  while (consumed < need && i + consumed < bytes.size() &&
         in(static_cast<unsigned char>(bytes[i + consumed]), consumed == 1 ? lo : 0x80, consumed == 1 ? hi : 0xBF))
    ++consumed;
  return consumed == need ? need : 0;
}

}  // namespace

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t consumed = 0;
    if (SequenceAt(bytes, i, consumed) > 0) out.append(bytes.substr(i, consumed));
    else out += kReplacementChar;  // the maximal invalid prefix is one U+FFFD
    i += consumed;
  }
  return out;
}

size_t Utf8ValidPrefix(std::string_view bytes) {
  size_t i = 0;
  for (size_t consumed = 0; i < bytes.size() && SequenceAt(bytes, i, consumed) > 0;) i += consumed;
  return i;
}

namespace {

// `depth`: the Sequences enclosing the decoder at `where`.
StatusOr<std::unique_ptr<Decoder>> ParseStep(const json& spec, const std::string& where, int depth) {
  BPT_RETURN_IF_ERROR(CheckSequenceDepth(depth, where));
  BPT_ASSIGN_OR_RETURN(std::string type, ComponentType(spec, where));
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Metaspace") {
    BPT_ASSIGN_OR_RETURN(char32_t replacement, CharField(spec, "replacement", where, "\xE2\x96\x81"));
    BPT_ASSIGN_OR_RETURN(bool strip_first, MetaspaceStripsFirst(spec, where));
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(replacement, strip_first));
  }
  if (type == "Strip") {
    BPT_ASSIGN_OR_RETURN(char32_t content, CharField(spec, "content", where));
    BPT_ASSIGN_OR_RETURN(size_t start, CountField(spec, "start", where));
    BPT_ASSIGN_OR_RETURN(size_t stop, CountField(spec, "stop", where));
    return std::unique_ptr<Decoder>(new StripDecoder(content, start, stop));
  }
  if (type == "Replace") {
    BPT_ASSIGN_OR_RETURN(const json* pattern, RequiredField(spec, "pattern", where));
    BPT_ASSIGN_OR_RETURN(Regex regex, ParsePattern(*pattern, FieldPath(where, "pattern")));
    BPT_ASSIGN_OR_RETURN(std::string content, StringField(spec, "content", where));
    return std::unique_ptr<Decoder>(new ReplaceDecoder(std::move(regex), std::move(content)));
  }
  if (type == "WordPiece") {
    BPT_ASSIGN_OR_RETURN(std::string prefix, StringField(spec, "prefix", where, "##"));
    BPT_ASSIGN_OR_RETURN(bool cleanup, BoolField(spec, "cleanup", where, true));
    return std::unique_ptr<Decoder>(new WordPieceDecoder(std::move(prefix), cleanup));
  }
  if (type == "BPEDecoder") {
    BPT_ASSIGN_OR_RETURN(std::string suffix, StringField(spec, "suffix", where, "</w>"));
    return std::unique_ptr<Decoder>(new BpeSuffixDecoder(std::move(suffix)));
  }
  if (type == "Sequence") {
    BPT_ASSIGN_OR_RETURN(const json* list, RequiredField(spec, "decoders", where));
    const std::string path = FieldPath(where, "decoders");
    if (!list->is_array()) return InvalidArgument(path + ": expected a list");
    std::vector<std::unique_ptr<Decoder>> decoders;
    for (size_t i = 0; i < list->size(); ++i) {
      BPT_ASSIGN_OR_RETURN(std::unique_ptr<Decoder> d, ParseStep((*list)[i], path + "[" + std::to_string(i) + "]", depth + 1));
      decoders.push_back(std::move(d));
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(decoders)));
  }
  return InvalidArgument(FieldPath(where, "type") + ": '" + type + "' is not supported");
}

}  // namespace

StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const json& spec, const std::string& where) {
  return ParseStep(spec, where, 0);
}

}  // namespace bpt::hf
