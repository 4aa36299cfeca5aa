#include "hf_normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "hf_byte_level.h"
#include "hf_regex.h"
#include "hf_spec_fields.h"
#include "hf_unicode.h"

// Unicode normalization is utf8proc's (Debian libutf8proc-dev): a small maintained C library that
// implements exactly the four normalization forms and the case and category tables needed here,
// without ICU's size. Debian 12's utf8proc 2.8 is Unicode 15.0; HF's crate normalizes with
// unicode-normalization-alignments, whose tables are older (NFKC leaves U+1E030, a Unicode 15
// character, unchanged where utf8proc maps it to U+0430), so only characters assigned since
// those tables can normalize differently.

namespace bpt::hf {
namespace {

using NormalizerPtr = std::unique_ptr<Normalizer>;

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  std::string Normalize(std::string_view text) const override {
    if (text.empty()) return {};
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t length =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                     &mapped, static_cast<utf8proc_option_t>(options_));
    // utf8proc fails only on invalid UTF-8 (excluded by the contract) or out of memory; the text
    // is then left as it is rather than lost.
    if (length < 0) return std::string(text);
    std::string out(reinterpret_cast<const char*>(mapped), static_cast<size_t>(length));
    std::free(mapped);
    return out;
  }

 private:
  int options_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(std::string_view text) const override {
    // HF prepends to non-empty text only.
    if (text.empty()) return {};
    std::string out;
    out.reserve(prefix_.size() + text.size());
    out += prefix_;
    out += text;
    return out;
  }

 private:
  std::string prefix_;
};

class Replace final : public Normalizer {
 public:
  Replace(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string Normalize(std::string_view text) const override {
    // HF's find_matches sees no match at all in empty text, not even an empty one.
    if (text.empty()) return {};
    std::string out;
    out.reserve(text.size());
    size_t copied = 0;
    pattern_.ForEachMatch(text, [&](size_t start, size_t end) {
      out.append(text.substr(copied, start - copied));
      out += content_;
      copied = end;
    });
    out.append(text.substr(copied));
    return out;
  }

 private:
  Regex pattern_;
  std::string content_;
};

void AppendLowercase(char32_t cp, std::string& out) {
  // Rust's char::to_lowercase, which HF applies per character: the simple mapping, except
  // U+0130, whose unconditional SpecialCasing mapping is two characters. No final-sigma rule
  // (that is str::to_lowercase's): 'Σ' is always 'σ'.
  if (cp == 0x130) {
    out += "i\xCC\x87";
    return;
  }
  AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), out);
}

std::string Lowercased(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      const char c = text[i++];
      out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
      continue;
    }
    AppendLowercase(NextCodePoint(text, i), out);
  }
  return out;
}

class Lowercase final : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override { return Lowercased(text); }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view text) const override {
    size_t begin = 0;
    if (left_) {
      for (size_t i = 0; i < text.size(); begin = i) {
        if (!IsWhiteSpace(NextCodePoint(text, i))) break;
      }
    }
    size_t end = text.size();
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t i = start;
        if (!IsWhiteSpace(NextCodePoint(text, i))) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_;
  bool right_;
};

template <typename Drop>
std::string Filtered(std::string_view text, Drop drop) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    if (!drop(NextCodePoint(text, i))) out.append(text.substr(start, i - start));
  }
  return out;
}

class StripAccents final : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override { return Filtered(text, IsCombiningMark); }
};

// SentencePiece's NMT normalization (HF's Nmt): controls dropped, odd spaces made ' '.
class Nmt final : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      const size_t start = i;
      const char32_t cp = NextCodePoint(text, i);
      if ((cp >= 0x01 && cp <= 0x08) || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F || cp == 0x8F ||
          cp == 0x9F) {
        continue;
      }
      if (cp == 0x09 || cp == 0x0A || cp == 0x0C || cp == 0x0D || cp == 0x1680 || (cp >= 0x200B && cp <= 0x200F) ||
          cp == 0x2028 || cp == 0x2029 || cp == 0x2581 || cp == 0xFEFF || cp == 0xFFFD) {
        out += ' ';
        continue;
      }
      out.append(text.substr(start, i - start));
    }
    return out;
  }
};

bool IsChineseChar(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// The crate's is_other(): Cc, Cf and Co only (unassigned code points are kept).
bool IsOtherCategory(char32_t cp) {
  const utf8proc_category_t c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO;
}

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        handle_chinese_chars_(handle_chinese_chars),
        strip_accents_(strip_accents),
        lowercase_(lowercase),
        nfd_(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE) {}

  std::string Normalize(std::string_view text) const override {
    std::string s(text);
    if (clean_text_) {
      std::string cleaned;
      cleaned.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        const size_t start = i;
        const char32_t cp = NextCodePoint(s, i);
        const bool tab_or_newline = cp == '\t' || cp == '\n' || cp == '\r';
        if (cp == 0 || cp == 0xFFFD || (!tab_or_newline && IsOtherCategory(cp))) continue;
        if (tab_or_newline || IsWhiteSpace(cp)) {
          cleaned += ' ';
        } else {
          cleaned.append(s, start, i - start);
        }
      }
      s = std::move(cleaned);
    }
    if (handle_chinese_chars_) {
      std::string padded;
      padded.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        const size_t start = i;
        const char32_t cp = NextCodePoint(s, i);
        if (IsChineseChar(cp)) padded += ' ';
        padded.append(s, start, i - start);
        if (IsChineseChar(cp)) padded += ' ';
      }
      s = std::move(padded);
    }
    if (strip_accents_) {
      s = Filtered(nfd_.Normalize(s), [](char32_t cp) {
        return utf8proc_category(static_cast<utf8proc_int32_t>(cp)) == UTF8PROC_CATEGORY_MN;
      });
    }
    if (lowercase_) s = Lowercased(s);
    return s;
  }

 private:
  bool clean_text_;
  bool handle_chinese_chars_;
  bool strip_accents_;
  bool lowercase_;
  UnicodeForm nfd_;
};

// HF's ByteLevel normalizer: the text's bytes as GPT-2's byte-level characters.
class ByteLevel final : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override { return BytesToByteLevelChars(text); }
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<NormalizerPtr> steps) : steps_(std::move(steps)) {}
  std::string Normalize(std::string_view text) const override {
    std::string s(text);
    for (const auto& step : steps_) s = step->Normalize(s);
    return s;
  }

 private:
  std::vector<NormalizerPtr> steps_;
};

StatusOr<NormalizerPtr> ParseStep(const nlohmann::json& spec, const std::string& where, int depth);

// `depth`: the Sequences enclosing this one.
StatusOr<NormalizerPtr> ParseSequence(const nlohmann::json& spec, const std::string& where, int depth) {
  BPT_ASSIGN_OR_RETURN(const nlohmann::json* list, RequiredField(spec, "normalizers", where));
  const std::string list_where = FieldPath(where, "normalizers");
  if (!list->is_array()) return InvalidArgument(list_where + ": expected a list, got " + list->dump());
  std::vector<NormalizerPtr> steps;
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string step_where = list_where + "[" + std::to_string(i) + "]";
    if ((*list)[i].is_null()) return InvalidArgument(step_where + ": expected a normalizer, got null");
    BPT_ASSIGN_OR_RETURN(NormalizerPtr step, ParseStep((*list)[i], step_where, depth + 1));
    steps.push_back(std::move(step));
  }
  return NormalizerPtr(std::make_unique<Sequence>(std::move(steps)));
}

StatusOr<NormalizerPtr> ParseBert(const nlohmann::json& spec, const std::string& where) {
  BPT_ASSIGN_OR_RETURN(const bool clean_text, BoolField(spec, "clean_text", where, true));
  BPT_ASSIGN_OR_RETURN(const bool chinese, BoolField(spec, "handle_chinese_chars", where, true));
  BPT_ASSIGN_OR_RETURN(const bool lowercase, BoolField(spec, "lowercase", where, true));
  // strip_accents null (or absent) follows lowercase, as in HF.
  bool strip_accents = lowercase;
  if (const auto it = spec.find("strip_accents"); it != spec.end() && !it->is_null()) {
    BPT_ASSIGN_OR_RETURN(strip_accents, BoolField(spec, "strip_accents", where));
  }
  return NormalizerPtr(std::make_unique<BertNormalizer>(clean_text, chinese, strip_accents, lowercase));
}

StatusOr<NormalizerPtr> ParseStep(const nlohmann::json& spec, const std::string& where, int depth) {
  BPT_RETURN_IF_ERROR(CheckSequenceDepth(depth, where));
  BPT_ASSIGN_OR_RETURN(const std::string type, ComponentType(spec, where));
  constexpr int kDecompose = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
  constexpr int kCompose = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (type == "NFC") return NormalizerPtr(std::make_unique<UnicodeForm>(kCompose));
  if (type == "NFD") return NormalizerPtr(std::make_unique<UnicodeForm>(kDecompose));
  if (type == "NFKC") return NormalizerPtr(std::make_unique<UnicodeForm>(kCompose | UTF8PROC_COMPAT));
  if (type == "NFKD") return NormalizerPtr(std::make_unique<UnicodeForm>(kDecompose | UTF8PROC_COMPAT));
  if (type == "Lowercase") return NormalizerPtr(std::make_unique<Lowercase>());
  if (type == "StripAccents") return NormalizerPtr(std::make_unique<StripAccents>());
  if (type == "Nmt") return NormalizerPtr(std::make_unique<Nmt>());
  if (type == "ByteLevel") return NormalizerPtr(std::make_unique<ByteLevel>());
  if (type == "Sequence") return ParseSequence(spec, where, depth);
  if (type == "BertNormalizer") return ParseBert(spec, where);
  if (type == "Prepend") {
    BPT_ASSIGN_OR_RETURN(std::string prefix, StringField(spec, "prepend", where));
    return NormalizerPtr(std::make_unique<Prepend>(std::move(prefix)));
  }
  if (type == "Replace") {
    BPT_ASSIGN_OR_RETURN(const nlohmann::json* pattern_spec, RequiredField(spec, "pattern", where));
    BPT_ASSIGN_OR_RETURN(Regex pattern, ParsePattern(*pattern_spec, FieldPath(where, "pattern")));
    BPT_ASSIGN_OR_RETURN(std::string content, StringField(spec, "content", where));
    return NormalizerPtr(std::make_unique<Replace>(std::move(pattern), std::move(content)));
  }
  if (type == "Strip") {
    BPT_ASSIGN_OR_RETURN(const bool left, BoolField(spec, "strip_left", where));
    BPT_ASSIGN_OR_RETURN(const bool right, BoolField(spec, "strip_right", where));
    return NormalizerPtr(std::make_unique<Strip>(left, right));
  }
  if (type == "Precompiled") {
    return InvalidArgument(FieldPath(where, "type") +
                           ": 'Precompiled' (SentencePiece's precompiled charsmap) is not a supported normalizer");
  }
  return InvalidArgument(FieldPath(where, "type") + ": '" + type + "' is not a supported normalizer");
}

}  // namespace

StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return NormalizerPtr();
  return ParseStep(spec, where, 0);
}

}  // namespace bpt::hf
