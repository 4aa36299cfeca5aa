#include "openai_response.h"

#include <utility>

namespace bpt::server::openai {
namespace {

using ojson = nlohmann::ordered_json;

const char* FinishReasonText(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "abort";
  }
  return "stop";
}

int64_t CodePoints(std::string_view text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

// Token texts are whole UTF-8 (the engine holds fragments back), but a message may quote what
// a client sent: the writer replaces anything else rather than fail.
std::string Dump(const ojson& value) { return value.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string Event(const ojson& value) { return "data: " + Dump(value) + "\n\n"; }

constexpr std::string_view kDone = "data: [DONE]\n\n";

ojson Usage(const GenerationResult& result) {
  const auto completion_tokens = static_cast<int64_t>(result.token_ids.size());
  return {{"prompt_tokens", result.prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", result.prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", result.cached_prompt_tokens}}}};
}

}  // namespace

ResponseWriter::ResponseWriter(ResponseContext context)
    : context_(std::move(context)),
      logprobs_(context_.route == Route::kChatCompletions, context_.top_logprobs, context_.token_text) {}

ojson ResponseWriter::Object(const char* object) const {
  return {{"id", context_.id}, {"object", object}, {"created", context_.created}, {"model", context_.model}};
}

ojson ResponseWriter::Chunk(ojson choice) const {
  ojson chunk = Object(chat() ? "chat.completion.chunk" : "text_completion");
  chunk["choices"] = ojson::array({std::move(choice)});
  if (context_.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

ojson ResponseWriter::ChoiceLogprobs() { return context_.logprobs ? logprobs_.Take() : ojson(nullptr); }

void ResponseWriter::AddLogprobs(const TokenOutput& token) {
  if (context_.logprobs) logprobs_.Add(token, text_code_points_);
  text_code_points_ += CodePoints(token.text);
}

std::string ResponseWriter::StreamStart() {
  if (!chat()) return "";
  return Event(Chunk({{"index", 0},
                      {"delta", {{"role", "assistant"}, {"content", ""}}},
                      {"logprobs", nullptr},
                      {"finish_reason", nullptr}}));
}

std::string ResponseWriter::StreamTokens(std::span<const TokenOutput> tokens) {
  std::string text;
  for (const TokenOutput& token : tokens) {
    AddLogprobs(token);
    text += token.text;
  }
  if (text.empty() && logprobs_.empty()) return "";
  if (chat())
    return Event(Chunk(
        {{"index", 0}, {"delta", {{"content", std::move(text)}}}, {"logprobs", ChoiceLogprobs()}, {"finish_reason", nullptr}}));
  return Event(Chunk({{"index", 0}, {"text", std::move(text)}, {"logprobs", ChoiceLogprobs()}, {"finish_reason", nullptr}}));
}

std::string ResponseWriter::StreamEnd(const GenerationResult& result) {
  ojson finish = {{"index", 0}};
  if (chat()) finish["delta"] = ojson::object();
  else finish["text"] = "";
  finish["logprobs"] = nullptr;
  finish["finish_reason"] = FinishReasonText(result.finish_reason);
  std::string out = Event(Chunk(std::move(finish)));
  if (context_.include_usage) {
    ojson usage = Object(chat() ? "chat.completion.chunk" : "text_completion");
    usage["choices"] = ojson::array();
    usage["usage"] = Usage(result);
    out += Event(usage);
  }
  out += kDone;
  return out;
}

std::string ResponseWriter::StreamComment(std::string_view text) {
  std::string comment = ": ";
  for (char c : text) comment.push_back(c == '\n' || c == '\r' ? ' ' : c);
  return comment + "\n\n";
}

std::string ResponseWriter::StreamError(const ApiError& error) {
  return "data: " + ErrorBody(error) + "\n\n" + std::string(kDone);
}

void ResponseWriter::Add(const TokenOutput& token) { AddLogprobs(token); }

std::string ResponseWriter::Body(const GenerationResult& result) {
  ojson choice = {{"index", 0}};
  if (chat()) choice["message"] = {{"role", "assistant"}, {"content", result.text}, {"refusal", nullptr}};
  else choice["text"] = result.text;
  choice["logprobs"] = ChoiceLogprobs();
  choice["finish_reason"] = FinishReasonText(result.finish_reason);
  ojson body = Object(chat() ? "chat.completion" : "text_completion");
  body["choices"] = ojson::array({std::move(choice)});
  body["usage"] = Usage(result);
  return Dump(body);
}

std::string ResponseWriter::ModelList(const std::string& model, int64_t created, int64_t max_model_len) {
  // vLLM's model card: OpenAI's four fields, and root, parent and max_model_len.
  const ojson card = {{"id", model},         {"object", "model"}, {"created", created},
                      {"owned_by", "bptserve"}, {"root", model},    {"parent", nullptr},
                      {"max_model_len", max_model_len}};
  return Dump({{"object", "list"}, {"data", ojson::array({card})}});
}

}  // namespace bpt::server::openai
