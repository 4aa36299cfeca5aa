// Tokens to the statement tree, with jinja2's grammar and operator precedence.
#pragma once

#include <vector>

#include "jinja_ast.h"
#include "jinja_lexer.h"
#include "status.h"

namespace bpt::jinja {

// How deep expressions and blocks may nest: a bound on the parser's and the renderer's stack.
inline constexpr int kMaxNesting = 200;

// InvalidArgument("line N: ...") on a syntax error or an unsupported construct (extends,
// include, import, recursive loops), naming what was found.
StatusOr<Body> Parse(const std::vector<Token>& tokens);

}  // namespace bpt::jinja
