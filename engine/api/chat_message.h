// One turn of a conversation, as a chat template reads it (messages[i].role, .content): the
// server converts from its protocol, the chat template renders a list of them.
#pragma once

#include <string>

namespace bpt {

struct ChatMessage {
  std::string role;
  std::string content;
};

}  // namespace bpt
