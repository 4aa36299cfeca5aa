// A Jinja2 template, parsed once and rendered many times (from several threads at once), with
// jinja2's semantics under transformers' environment settings. Hostile templates are bounded:
// each render has an output cap, a budget of work (loop iterations, macro calls, elements and
// bytes operations touch), a budget of bytes of strings and containers made, a cap on range(),
// a macro call depth and an evaluation depth; exceeding one is an InvalidArgument naming the
// limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "jinja_ast.h"
#include "jinja_value.h"
#include "status.h"

namespace bpt::jinja {

struct Limits {
  size_t max_output_bytes = size_t{64} << 20;  // also any one string or printed value
  // Loop iterations, macro calls, elements operations touch (compared, copied, searched) and
  // bytes they touch (one step per kBytesPerStep), together.
  int64_t max_iterations = 5'000'000;
  size_t max_allocated_bytes = size_t{256} << 20;  // strings and containers the render makes, in all
  int64_t max_range = 1'000'000;                   // elements of one range()
  int max_call_depth = 100;                        // nested macro calls
  // Expressions and statements evaluated inside one another, across macro calls: the stack a
  // render uses grows with it: 256 levels fit a default 8 MiB thread stack with room to spare
  // even under AddressSanitizer (1000 did not); real templates nest a few dozen.
  int max_eval_depth = 256;
};

class Template {
 public:
  // InvalidArgument("line N: ...") on a syntax error, an unknown filter or test.
  static StatusOr<Template> Parse(std::string_view source);

  // `variables`: the names the template sees (data and callables; later entries win). A
  // template error, or a callable's, is InvalidArgument("line N: message").
  StatusOr<std::string> Render(const ValueDict& variables, const Limits& limits = {}) const;

 private:
  explicit Template(std::shared_ptr<const Body> body) : body_(std::move(body)) {}
  std::shared_ptr<const Body> body_;
};

}  // namespace bpt::jinja
