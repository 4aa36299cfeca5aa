// A model's chat template (tokenizer_config.json's chat_template, or chat_template.jinja),
// rendered exactly as transformers' apply_chat_template(..., tokenize=False) renders it: the
// same variables (messages, add_generation_prompt, tools, documents, the special tokens), the
// same globals (raise_exception, strftime_now, namespace, dict) and continue_final_message's cut.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>

#include "chat_message.h"
#include "status.h"

namespace bpt {

struct ChatRenderOptions {
  bool add_generation_prompt = true;    // false when continue_final_message
  bool continue_final_message = false;  // transformers' semantics: render, then cut after the final message's content
  nlohmann::json tools;                 // null: absent (the template sees `tools` as None, as transformers passes it)
  nlohmann::json documents;             // same
};

class ChatTemplate {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  // The tokenizer's special tokens by attribute name ("bos_token", "eos_token", "pad_token", ...),
  // only those it has: the template sees the others undefined, as transformers passes them.
  using SpecialTokens = std::map<std::string, std::string>;

  // InvalidArgument("chat template: line N: ...") when the source does not parse.
  static StatusOr<ChatTemplate> Parse(std::string_view source, SpecialTokens special_tokens,
                                      Clock clock = std::chrono::system_clock::now);

  // Thread-safe. A template error or raise_exception(msg) gives InvalidArgument carrying the
  // template's message (and its line).
  StatusOr<std::string> Render(std::span<const ChatMessage> messages, const ChatRenderOptions& options) const;

 private:
  struct Impl;
  explicit ChatTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace bpt
