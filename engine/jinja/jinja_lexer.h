// Template source to tokens, as jinja2's lexer makes them under transformers' settings
// (trim_blocks and lstrip_blocks on, keep_trailing_newline off): newlines normalized to \n, one
// trailing newline dropped, whitespace control (`{%-`, `-%}`, `{{-`, `-}}`, `{%+`, `+%}`) and
// `{% raw %}` applied here, so the parser sees only the text that is output.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace bpt::jinja {

struct Token {
  enum class Type { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Type type;
  std::string value;  // text, name, decoded string literal, operator, or the number's source
  int line;
  int64_t int_value = 0;
  double float_value = 0;
};

// InvalidArgument("line N: ...") on an unterminated tag, comment or string, or an unknown character.
StatusOr<std::vector<Token>> Lex(std::string_view source);

}  // namespace bpt::jinja
