// One turn of a conversation, as a chat template reads it (messages[i].role, .content): the
// server converts from its protocol, the chat template renders a list of them.
#pragma once

#include <cstddef>
#include <string>

namespace bpt {

struct ChatMessage {
  std::string role;
  std::string content;
};

// A conversation's bounds in both APIs, beside the body's size limit (--max-message-mb): a chat
// longer than any model's context is refused before its template runs over it; a role is a word
// (system, user, tool, ...).
inline constexpr int kMaxChatMessages = 8192;
inline constexpr size_t kMaxChatRoleBytes = 64;

}  // namespace bpt
