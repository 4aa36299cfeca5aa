#include "chat_template.h"

#include <ctime>

#include "jinja_template.h"
#include "jinja_unicode.h"

namespace bpt {

struct ChatTemplate::Impl {
  jinja::Template tmpl;
  std::string source;
  SpecialTokens special_tokens;
  Clock clock;
};

namespace {

// transformers appends this to the final message's content, renders, and cuts the output at it.
constexpr std::string_view kContinueTag = "CONTINUE_FINAL_MESSAGE_TAG ";

Status Prefixed(const Status& s) { return Status(s.code(), "chat template: " + s.message()); }

// Python's datetime.now().strftime(format): local time, C strftime's directives.
StatusOr<std::string> Strftime(const std::string& format, std::chrono::system_clock::time_point now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm local{};
  localtime_r(&t, &local);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 >= format.size()) {
      out += format[i];
      continue;
    }
    // A glibc flag (%-d: no padding) and an E/O modifier pass through, as Python hands them to C.
    std::string spec = "%";
    if (i + 2 < format.size() && std::string_view("-_0^#").find(format[i + 1]) != std::string_view::npos)
      spec += format[++i];
    if (i + 2 < format.size() && (format[i + 1] == 'E' || format[i + 1] == 'O')) spec += format[++i];
    const char directive = format[++i];
    spec += directive;
    if (directive == 'f' && spec.size() == 2) {  // microseconds: Python's, not C's
      char buf[8];
      std::snprintf(buf, sizeof(buf), "%06lld", static_cast<long long>(micros < 0 ? micros + 1000000 : micros));
      out += buf;
      continue;
    }
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), spec.c_str(), &local);
    if (n == 0 && directive != 'p') return InvalidArgument("strftime_now: unsupported directive " + spec);
    out.append(buf, n);
  }
  return out;
}

}  // namespace

StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source, SpecialTokens special_tokens, Clock clock) {
  auto tmpl = jinja::Template::Parse(source);
  if (!tmpl.ok()) return Prefixed(tmpl.status());
  return ChatTemplate(std::make_shared<const Impl>(
      Impl{std::move(*tmpl), std::string(source), std::move(special_tokens), std::move(clock)}));
}

StatusOr<std::string> ChatTemplate::Render(std::span<const ChatMessage> messages,
                                           const ChatRenderOptions& options) const {
  using jinja::Value;
  // The checks apply_chat_template and render_jinja_template make, with their messages.
  if (messages.empty())
    return InvalidArgument("Cannot apply chat template to an empty conversation. Provide at least one message.");
  if (options.continue_final_message && options.add_generation_prompt)
    return InvalidArgument(
        "continue_final_message and add_generation_prompt are not compatible. Use continue_final_message when you "
        "want the model to continue the final message, and add_generation_prompt when you want to add a header that "
        "will prompt it to start a new assistant message instead.");
  if (options.continue_final_message && impl_->source.find("content") == std::string::npos)
    return InvalidArgument(
        "continue_final_message is set to \"content\" but this is not an accepted field in the chat_template");

  jinja::ValueList list;
  list.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    std::string content = messages[i].content;
    if (options.continue_final_message && i + 1 == messages.size()) content += kContinueTag;
    list.push_back(Value::Dict({{"role", Value::String(messages[i].role)}, {"content", Value::String(std::move(content))}}));
  }
  const Impl* impl = impl_.get();
  // transformers' {**special_tokens_map, **kwargs}: the special tokens first, so an argument of
  // the same name wins (Template::Render takes the later entry).
  jinja::ValueDict variables;
  for (const auto& [name, text] : impl->special_tokens) variables.emplace_back(name, Value::String(text));
  jinja::ValueDict arguments = {
      {"raise_exception", Value::Function("raise_exception", [](jinja::Arguments& args) -> StatusOr<Value> {
         auto text = args.positional.empty() ? StatusOr<std::string>(std::string()) : jinja::ToStr(args.positional[0], 1 << 20);
         return InvalidArgument(text.ok() ? *text : text.status().message());
       })},
      {"strftime_now", Value::Function("strftime_now", [impl](jinja::Arguments& args) -> StatusOr<Value> {
         if (args.positional.size() != 1 || !args.positional[0].is_string())
           return InvalidArgument("strftime_now() takes one string argument");
         BPT_ASSIGN_OR_RETURN(std::string text, Strftime(args.positional[0].str(), impl->clock()));
         return Value::String(std::move(text));
       })},
      {"messages", Value::List(std::move(list))},
      {"tools", Value::FromJson(options.tools)},
      {"documents", Value::FromJson(options.documents)},
      {"add_generation_prompt", Value::Bool(options.add_generation_prompt)},
  };
  for (auto& entry : arguments) variables.push_back(std::move(entry));
  auto rendered = impl->tmpl.Render(variables);
  if (!rendered.ok()) return Prefixed(rendered.status());
  std::string out = std::move(*rendered);
  if (!options.continue_final_message) return out;

  const std::string final_content = jinja::Strip(messages.back().content, nullptr, true, true);
  const std::string_view tag = kContinueTag.substr(0, kContinueTag.size() - 1);  // stripped of its space
  if (jinja::FindBytes(out, final_content) == std::string::npos || out.find(tag) == std::string::npos)
    return InvalidArgument(
        "continue_final_message is set but the final message does not appear in the chat after applying the chat "
        "template! This can happen if the chat template deletes portions of the final message.");
  const size_t at = out.rfind(tag);
  if (out.compare(at, kContinueTag.size(), kContinueTag) == 0) {
    out.resize(at);  // the template kept the spacing
  } else {
    out = jinja::Strip(std::string_view(out).substr(0, at), nullptr, false, true);
  }
  return out;
}

}  // namespace bpt
