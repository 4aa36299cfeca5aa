#include "jinja_lexer.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "jinja_unicode.h"

namespace bpt::jinja {
namespace {

bool IsAsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  StatusOr<std::vector<Token>> Run() {
    while (pos_ < src_.size()) {
      const size_t tag = FindTagStart(pos_);
      std::string text = src_.substr(pos_, tag - pos_);
      if (tag == src_.size()) {
        EmitText(std::move(text));
        pos_ = tag;
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign != '-' && (sign != '+' || kind == '{')) sign = '\0';  // `{{+x}}` is unary plus
      if (sign == '-') {
        text = Strip(text, nullptr, false, true);
      } else if (sign != '+' && kind != '{') {
        const size_t l_pos = text.rfind('\n') + 1;  // npos + 1 == 0
        if ((l_pos > 0 || line_starting_) && l_pos < text.size()) {
          bool all_space = true;
          for (size_t i = l_pos; i < text.size() && all_space; ++i) all_space = IsAsciiSpace(text[i]);
          if (all_space) text.resize(l_pos);
        }
      }
      // Lines are counted over the source, not over what whitespace control left of it.
      const int text_line = line_;
      CountLines(pos_, tag);
      EmitText(std::move(text), text_line);
      pos_ = tag + 2 + (sign != '\0' ? 1 : 0);
      line_starting_ = false;
      if (kind == '#') {
        BPT_RETURN_IF_ERROR(Comment());
      } else if (kind == '%' && RawBegins()) {
        BPT_RETURN_IF_ERROR(Raw());
      } else {
        BPT_RETURN_IF_ERROR(Tag(kind == '%'));
      }
    }
    tokens_.push_back({Token::Type::kEof, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return src_.size();
  }

  void CountLines(size_t from, size_t to) {
    for (size_t i = from; i < to; ++i)
      if (src_[i] == '\n') ++line_;
  }

  void EmitText(std::string text, int line = -1) {
    if (text.empty()) return;
    tokens_.push_back({Token::Type::kText, std::move(text), line < 0 ? line_ : line});
  }

  Status Error(const std::string& message) const {
    return InvalidArgument("line " + std::to_string(line_) + ": " + message);
  }

  // After a tag's end: `-` strips all following whitespace; trim_blocks drops one newline after
  // a block or comment; `+` keeps it.
  void AfterEnd(char sign, bool block) {
    if (sign == '-') {
      const size_t start = pos_;
      while (pos_ < src_.size()) {
        size_t n;
        if (!IsPythonSpace(DecodeAt(src_, pos_, &n))) break;
        pos_ += n;
      }
      CountLines(start, pos_);
      line_starting_ = pos_ > start && src_[pos_ - 1] == '\n';
    } else if (sign != '+' && block && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      ++line_;
      line_starting_ = true;
    }
  }

  Status Comment() {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) return Error("missing end of comment tag");
    const char sign = end > pos_ && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : '\0';
    CountLines(pos_, end);
    pos_ = end + 2;
    AfterEnd(sign, true);
    return OkStatus();
  }

  // At `{%`'s end: is this `raw %}`? Then pos_ moves past it.
  bool RawBegins() {
    size_t p = pos_;
    while (p < src_.size() && IsAsciiSpace(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && IsAsciiSpace(src_[p])) ++p;
    char sign = '\0';
    if (p < src_.size() && src_[p] == '-') sign = src_[p++];
    if (src_.compare(p, 2, "%}") != 0) return false;
    CountLines(pos_, p);
    pos_ = p + 2;
    if (sign == '-') AfterEnd(sign, true);
    return true;
  }

  Status Raw() {
    const int start_line = line_;
    for (size_t search = pos_;;) {
      const size_t open = src_.find("{%", search);
      if (open == std::string::npos) {
        line_ = start_line;
        return Error("missing endraw for raw block");
      }
      size_t p = open + 2;
      const char sign = p < src_.size() && (src_[p] == '-' || src_[p] == '+') ? src_[p++] : '\0';
      while (p < src_.size() && IsAsciiSpace(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) {
        search = open + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && IsAsciiSpace(src_[p])) ++p;
      char end_sign = '\0';
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) end_sign = src_[p++];
      if (src_.compare(p, 2, "%}") != 0) {
        search = open + 2;
        continue;
      }
      std::string text = src_.substr(pos_, open - pos_);
      if (sign == '-') text = Strip(text, nullptr, false, true);
      EmitText(std::move(text));
      CountLines(pos_, p);
      pos_ = p + 2;
      AfterEnd(end_sign, true);
      return OkStatus();
    }
  }

  Status Tag(bool block) {
    tokens_.push_back({block ? Token::Type::kBlockBegin : Token::Type::kVarBegin, "", line_});
    const char* close = block ? "%}" : "}}";
    std::vector<char> balance;
    while (true) {
      while (pos_ < src_.size() && IsAsciiSpace(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (pos_ >= src_.size())
        return Error(block ? "unexpected end of template, expected end of block tag"
                           : "unexpected end of template, expected end of print statement");
      if (balance.empty()) {
        char sign = '\0';
        size_t p = pos_;
        if (src_[p] == '-' || (block && src_[p] == '+')) sign = src_[p++];
        if (src_.compare(p, 2, close) == 0) {
          tokens_.push_back({block ? Token::Type::kBlockEnd : Token::Type::kVarEnd, "", line_});
          pos_ = p + 2;
          AfterEnd(sign, block);
          return OkStatus();
        }
      }
      const char c = src_[pos_];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        const size_t start = pos_;
        while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
          ++pos_;
        tokens_.push_back({Token::Type::kName, src_.substr(start, pos_ - start), line_});
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        BPT_RETURN_IF_ERROR(Number());
      } else if (c == '\'' || c == '"') {
        BPT_RETURN_IF_ERROR(String(c));
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]",
                                     "(",  ")",  "{",  "}",  "<",  ">",  "=", ".", ":", "|", ",", ";"};
        const char* op = nullptr;
        for (const char* candidate : kOps)
          if (src_.compare(pos_, std::char_traits<char>::length(candidate), candidate) == 0) {
            op = candidate;
            break;
          }
        if (op == nullptr) return Error(std::string("unexpected char '") + c + "'");
        const std::string o = op;
        if (o == "(" || o == "[" || o == "{") {
          balance.push_back(o[0] == '(' ? ')' : o[0] == '[' ? ']' : '}');
        } else if (o == ")" || o == "]" || o == "}") {
          if (balance.empty() || balance.back() != o[0]) return Error("unexpected '" + o + "'");
          balance.pop_back();
        }
        tokens_.push_back({Token::Type::kOp, o, line_});
        pos_ += o.size();
      }
    }
  }

  Status Number() {
    const size_t start = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
    };
    digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        is_float = true;
        pos_ = p;
        digits();
      }
    }
    std::string text;
    for (size_t i = start; i < pos_; ++i)
      if (src_[i] != '_') text += src_[i];
    Token token{is_float ? Token::Type::kFloat : Token::Type::kInt, text, line_};
    if (is_float) {
      token.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), token.int_value);
      if (ec != std::errc()) return Error("integer literal " + text + " is out of range");
    }
    tokens_.push_back(std::move(token));
    return OkStatus();
  }

  // Python's unicode-escape decoding of the literal's body, as jinja2 does it.
  Status String(char quote) {
    const int start_line = line_;
    std::string out;
    ++pos_;
    while (true) {
      if (pos_ >= src_.size()) {
        line_ = start_line;
        return Error("unterminated string");
      }
      const char c = src_[pos_];
      if (c == quote) {
        ++pos_;
        break;
      }
      if (c == '\n') ++line_;
      if (c != '\\' || pos_ + 1 >= src_.size()) {
        out += c;
        ++pos_;
        continue;
      }
      const char e = src_[pos_ + 1];
      pos_ += 2;
      auto hex = [&](int n) -> long {
        if (pos_ + n > src_.size()) return -1;
        long v = 0;
        for (int i = 0; i < n; ++i) {
          const char h = src_[pos_ + i];
          if (!std::isxdigit(static_cast<unsigned char>(h))) return -1;
          v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        pos_ += n;
        return v;
      };
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': ++line_; break;  // a line continuation
        case 'x':
        case 'u':
        case 'U': {
          const long v = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
          if (v < 0 || v > 0x10ffff) return Error(std::string("truncated \\") + e + " escape in string");
          // A lone surrogate has no UTF-8 form: Python's string would not encode either.
          if (v >= 0xd800 && v <= 0xdfff) return Error(std::string("a surrogate \\") + e + " escape in string");
          AppendUtf8(out, static_cast<char32_t>(v));
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int i = 0; i < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++i)
              v = v * 8 + (src_[pos_++] - '0');
            AppendUtf8(out, static_cast<char32_t>(v));
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    tokens_.push_back({Token::Type::kString, std::move(out), start_line});
    return OkStatus();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

StatusOr<std::vector<Token>> Lex(std::string_view source) { return Lexer(NormalizeNewlines(source)).Run(); }

}  // namespace bpt::jinja
