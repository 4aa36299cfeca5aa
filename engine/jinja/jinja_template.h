// A Jinja2 template, parsed once and rendered many times (from several threads at once), with
// jinja2's semantics under transformers' environment settings. Hostile templates are bounded:
// each render has an output cap, a budget of loop iterations and macro calls, a cap on range()
// and a macro call depth; exceeding one is an InvalidArgument naming the limit.
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
  int64_t max_iterations = 5'000'000;          // loop iterations, macro calls and per-item filter steps, together
  int64_t max_range = 1'000'000;               // elements of one range()
  int max_call_depth = 100;                    // nested macro calls
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
