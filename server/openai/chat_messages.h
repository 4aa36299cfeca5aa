// /v1/chat/completions' `messages` as the chat template reads them: each a role and its text.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "chat_message.h"
#include "openai_error.h"

namespace bpt::server::openai {

// Roles pass as sent: the model's template decides which it accepts. `content` is a string or an
// array of text parts, joined with "\n" as vLLM joins them. What a template cannot see (a
// message's `name`, tool calls, non-text parts) is refused naming it (messages[2].name,
// messages[0].content[1].type), never dropped. The texts move out of `messages`.
std::optional<ApiError> ParseChatMessages(nlohmann::json& messages, std::vector<ChatMessage>* out);

}  // namespace bpt::server::openai
