#include "chat_messages.h"

#include <string>
#include <utility>

#include "json_field.h"

namespace bpt::server::openai {
namespace {

using json = nlohmann::json;

std::optional<ApiError> ParseContentPart(json& part, const std::string& where, std::string* text) {
  if (!part.is_object()) return MustBe(where, "an object ({\"type\": \"text\", \"text\": ...})", part);
  const auto type = part.find("type");
  if (type == part.end() || type->is_null()) return InvalidRequest(where + ".type", where + ".type is required");
  std::string type_name;
  if (auto error = ReadString(*type, where + ".type", &type_name)) return error;
  if (type_name != "text")
    return InvalidRequest(where + ".type", where + ".type is '" + type_name +
                                               "': bptserve serves a text model and takes only 'text' content parts");
  for (const auto& [key, value] : part.items())
    if (key != "type" && key != "text") return InvalidRequest(where + "." + key, "Unrecognized request argument supplied: " + where + "." + key);
  const auto value = part.find("text");
  if (value == part.end() || value->is_null()) return InvalidRequest(where + ".text", where + ".text is required");
  if (!value->is_string()) return MustBe(where + ".text", "a string", *value);
  *text = std::move(value->get_ref<std::string&>());
  return std::nullopt;
}

std::optional<ApiError> ParseContent(json& content, const std::string& where, std::string* out) {
  if (content.is_string()) {
    *out = std::move(content.get_ref<std::string&>());
    return std::nullopt;
  }
  if (!content.is_array()) return MustBe(where, "a string or an array of text parts", content);
  for (size_t j = 0; j < content.size(); ++j) {
    std::string text;
    if (auto error = ParseContentPart(content[j], where + "[" + std::to_string(j) + "]", &text)) return error;
    if (j > 0) out->push_back('\n');
    out->append(text);
  }
  return std::nullopt;
}

// A message's fields a chat template never sees. null passes as unset: the SDK's own message
// objects, sent back as the next turn's history, carry `"refusal": null` and the like.
bool IsUnsupportedMessageField(const std::string& key) {
  return key == "name" || key == "tool_calls" || key == "function_call" || key == "tool_call_id" ||
         key == "refusal" || key == "audio";
}

std::optional<ApiError> ParseMessage(json& message, const std::string& where, ChatMessage* out) {
  if (!message.is_object()) return MustBe(where, "an object with a role and content", message);
  for (const auto& [key, value] : message.items()) {
    if (key == "role" || key == "content") continue;
    const std::string param = where + "." + key;
    if (!IsUnsupportedMessageField(key)) return InvalidRequest(param, "Unrecognized request argument supplied: " + param);
    if (!value.is_null())
      return InvalidRequest(param, param + " is not supported: bptserve has no tool calls, audio or named "
                                           "participants, and the chat template would not see it");
  }
  const auto role = message.find("role");
  if (role == message.end() || role->is_null()) return InvalidRequest(where + ".role", where + ".role is required");
  if (auto error = ReadString(*role, where + ".role", &out->role)) return error;
  if (out->role.empty()) return InvalidRequest(where + ".role", where + ".role is empty");
  if (out->role.size() > kMaxChatRoleBytes)
    return InvalidRequest(where + ".role", where + ".role is " + std::to_string(out->role.size()) +
                                               " bytes; at most " + std::to_string(kMaxChatRoleBytes) + " are allowed");
  const auto content = message.find("content");
  if (content == message.end() || content->is_null())
    return InvalidRequest(where + ".content", where + ".content is required");
  return ParseContent(*content, where + ".content", &out->content);
}

}  // namespace

std::optional<ApiError> ParseChatMessages(json& messages, std::vector<ChatMessage>* out) {
  if (!messages.is_array()) return MustBe("messages", "an array of messages", messages);
  if (messages.empty()) return InvalidRequest("messages", "messages is empty; a chat has at least one message");
  if (messages.size() > static_cast<size_t>(kMaxChatMessages))
    return InvalidRequest("messages", "messages has " + std::to_string(messages.size()) + " messages; at most " +
                                          std::to_string(kMaxChatMessages) + " are allowed");
  out->resize(messages.size());
  for (size_t i = 0; i < messages.size(); ++i)
    if (auto error = ParseMessage(messages[i], "messages[" + std::to_string(i) + "]", &(*out)[i])) return error;
  return std::nullopt;
}

}  // namespace bpt::server::openai
