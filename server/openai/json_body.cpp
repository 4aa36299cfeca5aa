#include "json_body.h"

#include <string>

namespace bpt::server::openai {
namespace {

using json = nlohmann::json;

// Where arrays and objects first nest past max_depth, or npos. Strings are skipped as JSON lexes
// them, so up to the first syntax error (where the parser stops) this sees the parser's
// structure; O(1) memory, unlike the parser's own stacks.
size_t TooDeepAt(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string_view::npos;
}

// Run over a body json::parse refused, for the parser's own words on why, without building what
// the parser read (json::parse would, to throw the same words). engine/base's JsonFields has its
// own for model files; the server may not include the engine's parts.
struct ParseErrorRecorder : nlohmann::json_sax<json> {
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    at = position;
    // what() is "[json.exception.parse_error.101] parse error at line 1, column 9: <why>".
    message = e.what();
    const size_t colon = message.find(": ");
    if (colon != std::string::npos) message.erase(0, colon + 2);
    return false;
  }
  size_t at = 0;
  std::string message;
};

std::string TypeName(const json& value) {
  return value.is_array() ? "an array" : std::string("a ") + value.type_name();
}

}  // namespace

std::variant<json, ApiError> ParseJsonBody(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return InvalidRequest("", "the request body is empty; send a JSON object");
  const size_t too_deep = TooDeepAt(body, kMaxJsonDepth);
  if (too_deep != std::string_view::npos)
    return InvalidRequest("", "the request body nests arrays and objects more than " + std::to_string(kMaxJsonDepth) +
                                  " deep (at byte " + std::to_string(too_deep) + ")");
  json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    ParseErrorRecorder recorder;
    json::sax_parse(body.begin(), body.end(), &recorder);
    if (recorder.message.find("UTF-8") != std::string::npos)
      return InvalidRequest("", "the request body is not valid UTF-8 (near byte " + std::to_string(recorder.at) +
                                    "): " + recorder.message);
    return InvalidRequest("", "the request body is not valid JSON: " + recorder.message);
  }
  if (!parsed.is_object())
    return InvalidRequest("", "the request body must be a JSON object, not " + TypeName(parsed));
  return parsed;
}

}  // namespace bpt::server::openai
