// Arbitrary bytes as an OpenAI API request body (the first byte picks the route), through what
// the HTTP API does with it: ParseRequest, then, for a request it accepts, the engine's own
// checks of its fields and the response formatting of a made-up generation. None may crash,
// leak or read out of bounds; a refusal is a 4xx whose error object is valid JSON naming a
// param or none; an accepted request always passes the engine's sampling and stopping checks
// (the API checks every field itself, so the engine never has to word a refusal for it).
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <variant>

#include "openai_error.h"
#include "openai_request.h"
#include "openai_response.h"

namespace {

using bpt::server::openai::ApiError;
using bpt::server::openai::ParsedRequest;
using bpt::server::openai::Route;

constexpr int kVocabSize = 512;
constexpr int kMaxNewTokens = 4096;

[[noreturn]] void Fail(const std::string& what) {
  std::cerr << what << "\n";
  std::abort();
}

void CheckError(const ApiError& e) {
  if (e.http_status < 400 || e.http_status >= 500) Fail("a refusal with status " + std::to_string(e.http_status));
  const auto body = nlohmann::json::parse(bpt::server::openai::ErrorBody(e), nullptr, false);
  if (body.is_discarded() || !body.contains("error") || !body["error"].contains("message"))
    Fail("an error body that is not OpenAI's error object: " + bpt::server::openai::ErrorBody(e));
}

void CheckAccepted(const ParsedRequest& p, Route route) {
  const bpt::Status sampling = bpt::ValidateSamplingParams(p.request.sampling);
  if (!sampling.ok()) Fail("accepted, but the engine refuses its sampling: " + sampling.ToString());
  const bpt::Status stopping = bpt::ValidateStoppingParams(p.request.stopping, kVocabSize, kMaxNewTokens);
  if (!stopping.ok()) Fail("accepted, but the engine refuses its stopping: " + stopping.ToString());
  const bool has_prompt = !p.prompt_text.empty() || !p.prompt_ids.empty() || !p.messages.empty();
  if (!has_prompt) Fail("accepted without a prompt");
  for (int32_t id : p.prompt_ids)
    if (id < 0 || id >= kVocabSize) Fail("accepted a prompt id out of the vocabulary: " + std::to_string(id));

  // The answer to it, streamed and whole, from tokens whose text is any of the request's bytes.
  bpt::server::openai::ResponseContext context;
  context.route = route;
  context.id = "fuzz";
  context.model = "fuzz-model";
  context.include_usage = p.include_usage;
  context.logprobs = p.logprobs;
  context.top_logprobs = p.request.sampling.top_logprobs;
  const std::string fragment = p.prompt_text.substr(0, 7);
  context.token_text = [&](int32_t id) { return fragment.substr(0, static_cast<size_t>(id) % 8); };
  bpt::server::openai::ResponseWriter stream(context), whole(context);
  bpt::TokenOutput token{3, "text", -0.5f, {}};
  for (int i = 0; i < p.request.sampling.top_logprobs; ++i) token.top_logprobs.emplace_back(i, -1.0f * i);
  bpt::GenerationResult result;
  result.token_ids = {3, 3};
  result.text = "texttext";
  result.prompt_tokens = 5;
  std::string sse = stream.StreamStart() + stream.StreamTokens({&token, 1}) + stream.StreamTokens({&token, 1}) +
                    stream.StreamEnd(result);
  whole.Add(token);
  whole.Add(token);
  const auto body = nlohmann::json::parse(whole.Body(result), nullptr, false);
  if (body.is_discarded()) Fail("a response body that is not JSON");
  if (sse.size() < 14 || sse.compare(sse.size() - 14, 14, "data: [DONE]\n\n") != 0) Fail("a stream not ending in [DONE]");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Route route = (data[0] & 1) != 0 ? Route::kChatCompletions : Route::kCompletions;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto parsed = bpt::server::openai::ParseRequest(route, body, bpt::SamplingParams{}, {kMaxNewTokens, kVocabSize});
  if (const auto* error = std::get_if<ApiError>(&parsed))
    CheckError(*error);
  else
    CheckAccepted(std::get<ParsedRequest>(parsed), route);
  return 0;
}
