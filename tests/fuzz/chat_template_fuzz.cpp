// Arbitrary bytes as a chat template: parsed, then rendered over a fixed conversation with
// tools. Any result is fine except a crash, a sanitizer report, a hang or runaway memory; the
// limits are tightened so that a template that loops as long as it may still finishes quickly.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "chat_template.h"
#include "jinja_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  // Through the public entry point, for its error wrapping...
  auto chat = bpt::ChatTemplate::Parse(source, {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  if (!chat.ok()) return 0;
  // ...and rendered by the interpreter with the variables transformers passes, under small limits.
  auto tmpl = bpt::jinja::Template::Parse(source);
  if (!tmpl.ok()) std::abort();  // ChatTemplate::Parse accepted it
  using bpt::jinja::Value;
  auto message = [](const char* role, const char* content) {
    return Value::Dict({{"role", Value::String(role)}, {"content", Value::String(content)}});
  };
  const Value messages = Value::List({message("system", "Be brief."), message("user", "Hi <think>x</think> é"),
                                      message("assistant", "Hello!"), message("user", "Weather?")});
  const Value tools = Value::FromJson(nlohmann::json::parse(
      R"([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
          "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])"));
  const bpt::jinja::ValueDict variables = {
      {"messages", messages},          {"tools", tools},
      {"documents", Value::None()},    {"add_generation_prompt", Value::Bool(true)},
      {"bos_token", Value::String("<s>")}, {"eos_token", Value::String("</s>")},
  };
  bpt::jinja::Limits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_iterations = 100000;
  limits.max_range = 10000;
  limits.max_call_depth = 50;
  limits.max_allocated_bytes = 16 << 20;
  auto out = tmpl->Render(variables, limits);
  if (out.ok() && out->size() > limits.max_output_bytes) std::abort();
  return 0;
}
