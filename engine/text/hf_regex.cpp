#include "hf_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

namespace bpt::hf {
namespace {

// Per thread, so that one const Regex serves several threads: the match data (only the whole
// match's offsets are read, so one pair serves every pattern) and a JIT stack bigger than the
// 32 KiB default, for patterns that backtrack over 100K-character words.
class MatchState {
 public:
  MatchState()
      : data_(pcre2_match_data_create(1, nullptr)),
        context_(pcre2_match_context_create(nullptr)),
        stack_(pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr)) {
    pcre2_jit_stack_assign(context_, nullptr, stack_);
  }
  ~MatchState() {
    pcre2_jit_stack_free(stack_);
    pcre2_match_context_free(context_);
    pcre2_match_data_free(data_);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;

  pcre2_match_data* data() const { return data_; }
  pcre2_match_context* context() const { return context_; }

 private:
  pcre2_match_data* data_;
  pcre2_match_context* context_;
  pcre2_jit_stack* stack_;
};

constexpr std::string_view kWhiteSpace = "\\p{White_Space}";
constexpr std::string_view kNotWhiteSpace = "\\P{White_Space}";

// Rewrites the escapes whose Oniguruma meaning PCRE2 spells differently (see Regex::Compile).
StatusOr<std::string> ToPcre2Syntax(std::string_view pattern, const std::string& where) {
  std::string out;
  out.reserve(pattern.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      switch (e) {
        case 's': out += kWhiteSpace; break;
        case 'S': out += kNotWhiteSpace; break;
        case 'h': out += in_class ? "0-9A-Fa-f" : "[0-9A-Fa-f]"; break;
        case 'H':
          if (in_class) {
            return InvalidArgument(where + ": \\H inside a character class is not supported");
          }
          out += "[^0-9A-Fa-f]";
          break;
        default:
          out += c;
          out += e;
      }
      continue;
    }
    // A ']' right after '[' or '[^' is a literal in both syntaxes; nested classes ([a[b]]) are
    // Oniguruma's alone and rare enough in tokenizer.json to leave to PCRE2's error.
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

void Regex::CodeDeleter::operator()(pcre2_real_code_8* code) const { pcre2_code_free(code); }

StatusOr<Regex> Regex::Compile(std::string_view pattern, const std::string& where) {
  BPT_ASSIGN_OR_RETURN(const std::string pcre2_pattern, ToPcre2Syntax(pattern, where));
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern.data()), pcre2_pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &error_offset, context);
  pcre2_compile_context_free(context);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return InvalidArgument(where + ": the regex '" + std::string(pattern) + "' is refused by PCRE2: " +
                           reinterpret_cast<const char*>(message) + " (at offset " +
                           std::to_string(error_offset) + " of its PCRE2 form '" + pcre2_pattern + "')");
  }
  // Without JIT (a platform PCRE2 has no JIT for) pcre2_match interprets: slower, same matches.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return Regex(code);
}

StatusOr<Regex> Regex::Literal(std::string_view text, const std::string& where) {
  std::string escaped;
  escaped.reserve(text.size() * 2);
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    // PCRE2 reads a backslash before any ASCII non-alphanumeric as that character itself.
    if (u < 0x80 && !std::isalnum(u)) escaped += '\\';
    escaped += c;
  }
  return Compile(escaped, where);
}

bool Regex::Find(std::string_view text, size_t from, size_t& start, size_t& end) const {
  thread_local MatchState state;
  // The caller vouches for valid UTF-8: checking it again at every start offset would make a
  // text's matching quadratic.
  const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), from,
                             PCRE2_NO_UTF_CHECK, state.data(), state.context());
  if (rc < 0) return false;
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data());
  start = ovector[0];
  end = ovector[1];
  return true;
}

size_t Regex::CharLengthAt(std::string_view text, size_t at) {
  if (at >= text.size()) return 1;
  const auto lead = static_cast<unsigned char>(text[at]);
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

StatusOr<Regex> ParsePattern(const nlohmann::json& spec, const std::string& where) {
  if (!spec.is_object() || spec.size() != 1) {
    return InvalidArgument(where + ": expected {\"String\": ...} or {\"Regex\": ...}");
  }
  if (const auto it = spec.find("String"); it != spec.end()) {
    if (!it->is_string()) return InvalidArgument(where + ".String: expected a string");
    return Regex::Literal(it->get_ref<const std::string&>(), where + ".String");
  }
  if (const auto it = spec.find("Regex"); it != spec.end()) {
    if (!it->is_string()) return InvalidArgument(where + ".Regex: expected a string");
    return Regex::Compile(it->get_ref<const std::string&>(), where + ".Regex");
  }
  return InvalidArgument(where + ": '" + spec.begin().key() + "' is not a pattern kind (String or Regex)");
}

}  // namespace bpt::hf
