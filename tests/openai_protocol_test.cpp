// The OpenAI protocol layer alone: request bodies to engine requests (every field, every
// refusal with the field it names), and engine events to the exact bytes OpenAI's clients read;
// then the openai SDK's own types over those bytes (tests/openai_sdk_parse.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "json_body.h"
#include "openai_error.h"
#include "openai_request.h"
#include "openai_response.h"

namespace bpt::server::openai {
namespace {

using json = nlohmann::json;

constexpr ParseLimits kLimits{4096, 32000};

SamplingParams ModelDefaults() {
  SamplingParams p;
  p.temperature = 0.6f;
  p.top_p = 0.9f;
  p.seed = 7;
  p.top_logprobs = 3;  // never carried over: only a request asks for logprobs
  return p;
}

ParsedRequest Accept(Route route, const std::string& body) {
  auto parsed = ParseRequest(route, body, ModelDefaults(), kLimits);
  if (auto* error = std::get_if<ApiError>(&parsed)) {
    ADD_FAILURE() << body << "\n refused: " << error->message << " (param " << error->param << ")";
    return {};
  }
  return std::get<ParsedRequest>(std::move(parsed));
}

ApiError Refuse(Route route, const std::string& body) {
  auto parsed = ParseRequest(route, body, ModelDefaults(), kLimits);
  if (!std::holds_alternative<ApiError>(parsed)) {
    ADD_FAILURE() << body << "\n was accepted";
    return {};
  }
  return std::get<ApiError>(parsed);
}

ParsedRequest Completion(const std::string& fields) {
  return Accept(Route::kCompletions, R"({"model":"m","prompt":"hi")" + (fields.empty() ? "" : "," + fields) + "}");
}
ParsedRequest Chat(const std::string& fields) {
  return Accept(Route::kChatCompletions,
                R"({"model":"m","messages":[{"role":"user","content":"hi"}])" + (fields.empty() ? "" : "," + fields) + "}");
}
ApiError RefuseCompletion(const std::string& fields) {
  return Refuse(Route::kCompletions, R"({"model":"m","prompt":"hi",)" + fields + "}");
}
ApiError RefuseChat(const std::string& fields) {
  return Refuse(Route::kChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"hi"}],)" + fields + "}");
}

void ExpectRefusal(const ApiError& e, const std::string& param, const std::string& message_part) {
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.param, param) << e.message;
  EXPECT_NE(e.message.find(message_part), std::string::npos) << "message: " << e.message << "\nexpected: " << message_part;
}

// --- /v1/completions ---------------------------------------------------------------------------

TEST(OpenAiCompletionsRequest, DefaultsAreOpenAisAndTheModels) {
  const ParsedRequest r = Completion("");
  EXPECT_EQ(r.route, Route::kCompletions);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt_text, "hi");
  EXPECT_TRUE(r.prompt_ids.empty());
  EXPECT_TRUE(r.messages.empty());
  EXPECT_TRUE(r.request.prompt.empty());
  EXPECT_EQ(r.request.stopping.max_new_tokens, 16);  // OpenAI's completions default
  EXPECT_FALSE(r.default_max_new_tokens);
  EXPECT_FLOAT_EQ(r.request.sampling.temperature, 0.6f);
  EXPECT_FLOAT_EQ(r.request.sampling.top_p, 0.9f);
  EXPECT_EQ(r.request.sampling.seed, 7u);
  EXPECT_EQ(r.request.sampling.top_logprobs, 0);
  EXPECT_TRUE(r.request.skip_special_tokens);
  EXPECT_FALSE(r.request.stopping.ignore_eos);
  EXPECT_TRUE(r.request.stopping.stop.empty());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_FALSE(r.logprobs);
  EXPECT_EQ(r.user, "");
}

TEST(OpenAiCompletionsRequest, EveryFieldReachesTheEngineRequest) {
  const ParsedRequest r = Completion(
      R"("max_tokens":100,"temperature":0,"top_p":0.5,"top_k":40,"min_p":0.05,"presence_penalty":-1.5,)"
      R"("frequency_penalty":2,"repetition_penalty":1.1,"seed":42,"stop":"\n\n","logprobs":3,"stream":true,)"
      R"("stream_options":{"include_usage":true},"user":"u-1","ignore_eos":true,"stop_token_ids":[2,31999],)"
      R"("skip_special_tokens":false,"n":1,"best_of":1,"echo":false,"logit_bias":{},"suffix":null)");
  const GenerationRequest& g = r.request;
  EXPECT_EQ(g.stopping.max_new_tokens, 100);
  EXPECT_FALSE(r.default_max_new_tokens);
  EXPECT_EQ(g.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(g.sampling.top_p, 0.5f);
  EXPECT_EQ(g.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(g.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(g.sampling.presence_penalty, -1.5f);
  EXPECT_FLOAT_EQ(g.sampling.frequency_penalty, 2.0f);
  EXPECT_FLOAT_EQ(g.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(g.sampling.seed, 42u);
  EXPECT_EQ(g.stopping.stop, std::vector<std::string>{"\n\n"});
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(g.sampling.top_logprobs, 3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.user, "u-1");
  EXPECT_TRUE(g.stopping.ignore_eos);
  EXPECT_EQ(g.stopping.stop_token_ids, (std::vector<int32_t>{2, 31999}));
  EXPECT_FALSE(g.skip_special_tokens);
}

TEST(OpenAiCompletionsRequest, PromptForms) {
  EXPECT_EQ(Accept(Route::kCompletions, R"({"prompt":"text"})").prompt_text, "text");
  EXPECT_EQ(Accept(Route::kCompletions, R"({"prompt":["one text"]})").prompt_text, "one text");
  EXPECT_EQ(Accept(Route::kCompletions, R"({"prompt":[1,2,31999]})").prompt_ids, (std::vector<int32_t>{1, 2, 31999}));
  EXPECT_EQ(Accept(Route::kCompletions, R"({"prompt":[[5,6]]})").prompt_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(Accept(Route::kCompletions, R"({"prompt":"x"})").model, "");  // vLLM's: the caller serves its model
}

TEST(OpenAiCompletionsRequest, PromptRefusals) {
  const auto refuse = [](const std::string& prompt) { return Refuse(Route::kCompletions, R"({"prompt":)" + prompt + "}"); };
  ExpectRefusal(refuse(R"(["a","b"])"), "prompt", "2 prompts");
  ExpectRefusal(refuse("[[1],[2]]"), "prompt", "2 prompts");
  ExpectRefusal(refuse("[]"), "prompt", "prompt is empty");
  ExpectRefusal(refuse(R"("")"), "prompt", "prompt is empty");
  ExpectRefusal(refuse(R"([""])"), "prompt[0]", "prompt[0] is empty");
  ExpectRefusal(refuse("[[]]"), "prompt[0]", "prompt[0] is empty");
  ExpectRefusal(refuse(R"([1,"a"])"), "prompt[1]", "prompt[1] must be a token id, an integer in [0, 32000), got a string");
  ExpectRefusal(refuse("[1.0]"), "prompt[0]", "token id");
  ExpectRefusal(refuse("[-1]"), "prompt[0]", "got -1");
  ExpectRefusal(refuse("[32000]"), "prompt[0]", "got 32000");
  ExpectRefusal(refuse("[18446744073709551615]"), "prompt[0]", "token id");
  ExpectRefusal(refuse("[[1,99999]]"), "prompt[0][1]", "got 99999");
  ExpectRefusal(refuse("5"), "prompt", "prompt must be a string or an array of token ids, got 5");
  ExpectRefusal(refuse("{}"), "prompt", "got an object");
  ExpectRefusal(refuse("null"), "prompt", "prompt is required");
  ExpectRefusal(Refuse(Route::kCompletions, R"({"model":"m"})"), "prompt", "prompt is required");
}

TEST(OpenAiCompletionsRequest, Logprobs) {
  const ParsedRequest zero = Completion(R"("logprobs":0)");
  EXPECT_TRUE(zero.logprobs);
  EXPECT_EQ(zero.request.sampling.top_logprobs, 0);
  EXPECT_EQ(Completion(R"("logprobs":5)").request.sampling.top_logprobs, 5);
  EXPECT_FALSE(Completion(R"("logprobs":null)").logprobs);
  ExpectRefusal(RefuseCompletion(R"("logprobs":6)"), "logprobs", "logprobs must be in [0, 5], got 6");
  ExpectRefusal(RefuseCompletion(R"("logprobs":-1)"), "logprobs", "in [0, 5]");
  ExpectRefusal(RefuseCompletion(R"("logprobs":true)"), "logprobs", "logprobs must be an integer, got true");
}

TEST(OpenAiCompletionsRequest, ChatOnlyFieldsAreUnrecognized) {
  for (const char* key : {"messages", "max_completion_tokens", "top_logprobs", "tools", "response_format"}) {
    SCOPED_TRACE(key);
    ExpectRefusal(RefuseCompletion(std::string("\"") + key + "\":1"), key,
                  std::string("Unrecognized request argument supplied: ") + key);
  }
}

// --- /v1/chat/completions ----------------------------------------------------------------------

TEST(OpenAiChatRequest, DefaultsLeaveMaxTokensToTheWorker) {
  const ParsedRequest r = Chat("");
  EXPECT_EQ(r.route, Route::kChatCompletions);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "hi");
  EXPECT_TRUE(r.prompt_text.empty());
  EXPECT_TRUE(r.prompt_ids.empty());
  EXPECT_TRUE(r.default_max_new_tokens);
  EXPECT_EQ(r.request.stopping.max_new_tokens, 256);
  EXPECT_FALSE(r.logprobs);
  EXPECT_EQ(r.request.sampling.top_logprobs, 0);
}

TEST(OpenAiChatRequest, MaxCompletionTokensAndMaxTokens) {
  const ParsedRequest a = Chat(R"("max_completion_tokens":30)");
  EXPECT_EQ(a.request.stopping.max_new_tokens, 30);
  EXPECT_FALSE(a.default_max_new_tokens);
  EXPECT_EQ(Chat(R"("max_tokens":31)").request.stopping.max_new_tokens, 31);
  EXPECT_EQ(Chat(R"("max_tokens":32,"max_completion_tokens":32)").request.stopping.max_new_tokens, 32);
  EXPECT_EQ(Chat(R"("max_tokens":null,"max_completion_tokens":33)").request.stopping.max_new_tokens, 33);
  ExpectRefusal(RefuseChat(R"("max_tokens":10,"max_completion_tokens":20)"), "max_tokens", "disagree");
  ExpectRefusal(RefuseChat(R"("max_completion_tokens":0)"), "max_completion_tokens",
                "max_completion_tokens must be in [1, 4096], got 0");
  ExpectRefusal(RefuseChat(R"("max_completion_tokens":4097)"), "max_completion_tokens", "in [1, 4096]");
  EXPECT_EQ(Chat(R"("max_completion_tokens":4096)").request.stopping.max_new_tokens, 4096);
}

TEST(OpenAiChatRequest, EveryFieldReachesTheEngineRequest) {
  const ParsedRequest r = Chat(
      R"("temperature":1.5,"top_p":1,"top_k":-1,"min_p":1,"presence_penalty":2,"frequency_penalty":-2,)"
      R"("repetition_penalty":0.5,"seed":-1,"stop":["a","b"],"logprobs":true,"top_logprobs":20,"stream":true,)"
      R"("stream_options":{"include_usage":false,"include_obfuscation":false},"user":"x","ignore_eos":false,)"
      R"("skip_special_tokens":true,"n":1,"tools":[],"response_format":{"type":"text"},"store":false,)"
      R"("modalities":["text"],"logit_bias":null,"parallel_tool_calls":null)");
  const SamplingParams& s = r.request.sampling;
  EXPECT_FLOAT_EQ(s.temperature, 1.5f);
  EXPECT_FLOAT_EQ(s.top_p, 1.0f);
  EXPECT_EQ(s.top_k, 0);  // vLLM's -1: every token
  EXPECT_FLOAT_EQ(s.min_p, 1.0f);
  EXPECT_FLOAT_EQ(s.presence_penalty, 2.0f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -2.0f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 0.5f);
  EXPECT_EQ(s.seed, std::numeric_limits<uint64_t>::max());  // -1's bit pattern
  EXPECT_EQ(r.request.stopping.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(s.top_logprobs, 20);
  EXPECT_TRUE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_EQ(r.user, "x");
}

TEST(OpenAiChatRequest, Logprobs) {
  const ParsedRequest on = Chat(R"("logprobs":true)");
  EXPECT_TRUE(on.logprobs);
  EXPECT_EQ(on.request.sampling.top_logprobs, 0);
  EXPECT_FALSE(Chat(R"("logprobs":false)").logprobs);
  ExpectRefusal(RefuseChat(R"("top_logprobs":2)"), "top_logprobs", "needs logprobs set to true");
  // 0 asks for nothing: OpenAI takes it without logprobs.
  const ParsedRequest zero = Chat(R"("logprobs":false,"top_logprobs":0)");
  EXPECT_FALSE(zero.logprobs);
  EXPECT_EQ(zero.request.sampling.top_logprobs, 0);
  ExpectRefusal(RefuseChat(R"("logprobs":true,"top_logprobs":21)"), "top_logprobs", "in [0, 20]");
  ExpectRefusal(RefuseChat(R"("logprobs":1)"), "logprobs", "logprobs must be a boolean, got 1");
  ExpectRefusal(RefuseChat(R"("prompt":"x")"), "prompt", "Unrecognized request argument supplied: prompt");
  ExpectRefusal(RefuseChat(R"("echo":false)"), "echo", "Unrecognized");
}

TEST(OpenAiChatRequest, ContentPartsJoinWithNewlinesAsVllm) {
  const ParsedRequest r = Accept(Route::kChatCompletions, R"({"messages":[
      {"role":"system","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"developer","content":[]},
      {"role":"assistant","content":"c","refusal":null,"tool_calls":null,"function_call":null,"audio":null,"name":null},
      {"role":"tool","content":[{"type":"text","text":""}]}]})");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[0].content, "a\nb");
  EXPECT_EQ(r.messages[1].role, "developer");
  EXPECT_EQ(r.messages[1].content, "");
  EXPECT_EQ(r.messages[2].content, "c");
  EXPECT_EQ(r.messages[3].content, "");
}

TEST(OpenAiChatRequest, MessageRefusalsNameTheField) {
  const auto refuse = [](const std::string& messages) {
    return Refuse(Route::kChatCompletions, R"({"messages":)" + messages + "}");
  };
  ExpectRefusal(refuse("[]"), "messages", "messages is empty");
  ExpectRefusal(refuse(R"("hi")"), "messages", "messages must be an array of messages, got a string");
  ExpectRefusal(refuse("null"), "messages", "messages is required");
  ExpectRefusal(Refuse(Route::kChatCompletions, "{}"), "messages", "messages is required");
  ExpectRefusal(refuse(R"(["hi"])"), "messages[0]", "messages[0] must be an object");
  ExpectRefusal(refuse(R"([{"content":"x"}])"), "messages[0].role", "messages[0].role is required");
  ExpectRefusal(refuse(R"([{"role":"","content":"x"}])"), "messages[0].role", "is empty");
  ExpectRefusal(refuse(R"([{"role":5,"content":"x"}])"), "messages[0].role", "must be a string, got 5");
  ExpectRefusal(refuse(R"([{"role":")" + std::string(65, 'r') + R"(","content":"x"}])"), "messages[0].role",
                "65 bytes; at most 64");
  EXPECT_EQ(Accept(Route::kChatCompletions, R"({"messages":[{"role":")" + std::string(64, 'r') + R"(","content":"x"}]})")
                .messages[0].role.size(),
            64u);
  ExpectRefusal(refuse(R"([{"role":"user"}])"), "messages[0].content", "messages[0].content is required");
  ExpectRefusal(refuse(R"([{"role":"user","content":null}])"), "messages[0].content", "is required");
  ExpectRefusal(refuse(R"([{"role":"user","content":7}])"), "messages[0].content",
                "a string or an array of text parts, got 7");
  ExpectRefusal(refuse(R"([{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"a"},)"
                       R"({"type":"image_url","image_url":{"url":"x"}}]}])"),
                "messages[1].content[1].type", "'image_url'");
  ExpectRefusal(refuse(R"([{"role":"user","content":["a"]}])"), "messages[0].content[0]", "must be an object");
  ExpectRefusal(refuse(R"([{"role":"user","content":[{"text":"a"}]}])"), "messages[0].content[0].type", "is required");
  ExpectRefusal(refuse(R"([{"role":"user","content":[{"type":"text"}]}])"), "messages[0].content[0].text", "is required");
  ExpectRefusal(refuse(R"([{"role":"user","content":[{"type":"text","text":1}]}])"), "messages[0].content[0].text",
                "must be a string");
  ExpectRefusal(refuse(R"([{"role":"user","content":[{"type":"text","text":"a","cache_control":{}}]}])"),
                "messages[0].content[0].cache_control", "Unrecognized request argument supplied");
  for (const char* field : {"name", "tool_calls", "function_call", "tool_call_id", "refusal", "audio"}) {
    SCOPED_TRACE(field);
    ExpectRefusal(refuse(std::string(R"([{"role":"user","content":"x",")") + field + R"(":"v"}])"),
                  std::string("messages[0].") + field, "is not supported");
  }
  ExpectRefusal(refuse(R"([{"role":"user","content":"x","weight":1}])"), "messages[0].weight",
                "Unrecognized request argument supplied: messages[0].weight");
}

TEST(OpenAiChatRequest, MessageCountIsBounded) {
  std::string many = "[";
  for (int i = 0; i < 8193; ++i) many += std::string(i ? "," : "") + R"({"role":"user","content":""})";
  ExpectRefusal(Refuse(Route::kChatCompletions, R"({"messages":)" + many + "]}"), "messages", "8193 messages; at most 8192");
}

// --- fields both routes share ------------------------------------------------------------------

struct BadValue {
  const char* fields;
  const char* param;
  const char* message;
};

TEST(OpenAiRequest, RangesAndTypesUseTheApisNames) {
  const std::vector<BadValue> cases = {
      {R"("temperature":2.01)", "temperature", "temperature must be in [0, 2] (0 is greedy), got 2.01"},
      {R"("temperature":-0.1)", "temperature", "in [0, 2]"},
      {R"("temperature":"hot")", "temperature", "temperature must be a number, got a string"},
      {R"("temperature":true)", "temperature", "must be a number, got true"},
      {R"("temperature":[1])", "temperature", "must be a number, got an array"},
      {R"("top_p":0)", "top_p", "top_p must be in (0, 1], got 0"},
      {R"("top_p":1e-50)", "top_p", "in (0, 1]"},  // 0 as the engine's float
      {R"("top_p":1.5)", "top_p", "in (0, 1]"},
      {R"("top_k":-2)", "top_k", "top_k must be -1 or 0 (every token) or a count"},
      {R"("top_k":2147483648)", "top_k", "top_k must be -1 or 0"},
      {R"("top_k":1.5)", "top_k", "top_k must be an integer, got 1.5"},
      {R"("min_p":1.01)", "min_p", "min_p must be in [0, 1]"},
      {R"("min_p":-0.5)", "min_p", "in [0, 1]"},
      {R"("presence_penalty":2.5)", "presence_penalty", "in [-2, 2]"},
      {R"("frequency_penalty":-3)", "frequency_penalty", "in [-2, 2]"},
      {R"("repetition_penalty":0)", "repetition_penalty", "repetition_penalty must be a finite number > 0"},
      {R"("repetition_penalty":1e300)", "repetition_penalty", "finite"},  // infinite as a float
      {R"("seed":9223372036854775808)", "seed", "seed must be a 64-bit signed integer"},
      {R"("seed":1.5)", "seed", "seed must be an integer, got 1.5"},
      {R"("seed":"1")", "seed", "must be an integer, got a string"},
      {R"("max_tokens":0)", "max_tokens", "max_tokens must be in [1, 4096], got 0"},
      {R"("max_tokens":-5)", "max_tokens", "in [1, 4096]"},
      {R"("max_tokens":4097)", "max_tokens", "in [1, 4096]"},
      {R"("max_tokens":1e20)", "max_tokens", "must be an integer"},
      {R"("max_tokens":"16")", "max_tokens", "must be an integer, got a string"},
      {R"("stop":5)", "stop", "stop must be a string or an array of strings, got 5"},
      {R"("stop":[""])", "stop[0]", "stop[0] is empty"},
      {R"("stop":"")", "stop", "stop is empty"},
      {R"("stop":["a",1])", "stop[1]", "stop[1] must be a string, got 1"},
      {R"("stop":["a",null])", "stop[1]", "got null"},
      {R"("stop_token_ids":[1,-1])", "stop_token_ids[1]", "stop_token_ids[1] must be a token id"},
      {R"("stop_token_ids":[32000])", "stop_token_ids[0]", "[0, 32000)"},
      {R"("stop_token_ids":3)", "stop_token_ids", "must be an array of token ids"},
      {R"("ignore_eos":1)", "ignore_eos", "ignore_eos must be a boolean, got 1"},
      {R"("skip_special_tokens":"no")", "skip_special_tokens", "must be a boolean"},
      {R"("stream":"true")", "stream", "stream must be a boolean, got a string"},
      {R"("user":5)", "user", "user must be a string, got 5"},
      {R"("model":["m"])", "model", "model must be a string"},
      {R"("stream_options":true,"stream":true)", "stream_options", "stream_options must be an object"},
  };
  for (const Route route : {Route::kCompletions, Route::kChatCompletions}) {
    for (const BadValue& c : cases) {
      SCOPED_TRACE(c.fields);
      ExpectRefusal(route == Route::kCompletions ? RefuseCompletion(c.fields) : RefuseChat(c.fields), c.param, c.message);
    }
  }
}

TEST(OpenAiRequest, IntegersMayBeWrittenAsWholeFloats) {
  EXPECT_EQ(Completion(R"("max_tokens":5.0)").request.stopping.max_new_tokens, 5);
  EXPECT_EQ(Completion(R"("seed":-9223372036854775808)").request.sampling.seed, uint64_t{1} << 63);
  EXPECT_EQ(Completion(R"("seed":9223372036854775807)").request.sampling.seed, uint64_t{INT64_MAX});
  EXPECT_EQ(Completion(R"("top_k":1)").request.sampling.top_k, 1);
  EXPECT_EQ(Completion(R"("top_k":0)").request.sampling.top_k, 0);
}

TEST(OpenAiRequest, StopStringsTakeTheEnginesLimits) {
  std::string sixteen, seventeen;
  for (int i = 0; i < 17; ++i) (i < 16 ? sixteen : seventeen) += std::string(i % 16 ? "," : "") + "\"s" + std::to_string(i) + "\"";
  seventeen = sixteen + "," + seventeen;
  EXPECT_EQ(Completion(R"("stop":[)" + sixteen + "]").request.stopping.stop.size(), 16u);
  ExpectRefusal(RefuseCompletion(R"("stop":[)" + seventeen + "]"), "stop", "stop has 17 strings; at most 16");
  EXPECT_EQ(Completion(R"("stop":")" + std::string(256, 'x') + "\"").request.stopping.stop[0].size(), 256u);
  ExpectRefusal(RefuseCompletion(R"("stop":["a",")" + std::string(257, 'x') + "\"]"), "stop[1]",
                "stop[1] is 257 bytes; at most 256");
  EXPECT_TRUE(Completion(R"("stop":[])").request.stopping.stop.empty());
}

TEST(OpenAiRequest, NullIsUnset) {
  const std::string nulls =
      R"("max_tokens":null,"temperature":null,"top_p":null,"top_k":null,"min_p":null,"presence_penalty":null,)"
      R"("frequency_penalty":null,"repetition_penalty":null,"seed":null,"stop":null,"stop_token_ids":null,)"
      R"("ignore_eos":null,"skip_special_tokens":null,"stream":null,"stream_options":null,"user":null,"model":null,)"
      R"("logprobs":null,"n":null,"logit_bias":null)";
  const ParsedRequest c = Completion(nulls + R"(,"best_of":null,"echo":null,"suffix":null)");
  const ParsedRequest d = Completion("");
  EXPECT_EQ(c.request.stopping.max_new_tokens, d.request.stopping.max_new_tokens);
  EXPECT_EQ(c.request.sampling.temperature, d.request.sampling.temperature);
  EXPECT_EQ(c.request.sampling.seed, d.request.sampling.seed);
  EXPECT_TRUE(c.request.skip_special_tokens);
  EXPECT_EQ(c.model, "");
  const ParsedRequest chat = Chat(nulls + R"(,"max_completion_tokens":null,"top_logprobs":null,"tools":null)");
  EXPECT_TRUE(chat.default_max_new_tokens);
  EXPECT_FALSE(chat.logprobs);
}

TEST(OpenAiRequest, UnsupportedFieldsAreRefusedUnlessTheyAskNothing) {
  ExpectRefusal(RefuseCompletion(R"("n":2)"), "n", "n must be 1");
  ExpectRefusal(RefuseChat(R"("n":0)"), "n", "n must be 1");
  ExpectRefusal(RefuseCompletion(R"("best_of":3)"), "best_of", "best_of must be 1");
  ExpectRefusal(RefuseCompletion(R"("echo":true)"), "echo", "echo is not supported");
  ExpectRefusal(RefuseCompletion(R"("suffix":"end")"), "suffix", "suffix is not supported");
  ExpectRefusal(RefuseCompletion(R"("logit_bias":{"50256":-100})"), "logit_bias", "logit_bias is not supported");
  ExpectRefusal(RefuseChat(R"("tools":[{"type":"function","function":{"name":"f"}}])"), "tools", "tools are not supported");
  ExpectRefusal(RefuseChat(R"("tool_choice":"none")"), "tool_choice", "not supported");
  ExpectRefusal(RefuseChat(R"("response_format":{"type":"json_object"})"), "response_format", "not supported");
  // A "type" that is no string is refused like any other format, never thrown over.
  for (const char* type : {"null", "1", "[]", "{}"})
    ExpectRefusal(RefuseChat(std::string(R"("response_format":{"type":)") + type + "}"), "response_format", "not supported");
  ExpectRefusal(RefuseChat(R"("function_call":"auto")"), "function_call", "not supported");
  ExpectRefusal(RefuseChat(R"("functions":[{"name":"f"}])"), "functions", "not supported");
  ExpectRefusal(RefuseChat(R"("audio":{"voice":"alloy"})"), "audio", "not supported");
  ExpectRefusal(RefuseChat(R"("modalities":["text","audio"])"), "modalities", "not supported");
  ExpectRefusal(RefuseChat(R"("prediction":{"type":"content","content":"x"})"), "prediction", "not supported");
  ExpectRefusal(RefuseChat(R"("parallel_tool_calls":true)"), "parallel_tool_calls", "not supported");
  ExpectRefusal(RefuseChat(R"("store":true)"), "store", "not supported");
  ExpectRefusal(RefuseChat(R"("reasoning_effort":"low")"), "reasoning_effort", "not supported");
  ExpectRefusal(RefuseChat(R"("service_tier":"auto")"), "service_tier", "not supported");
  ExpectRefusal(RefuseCompletion(R"("frobnicate":1)"), "frobnicate", "Unrecognized request argument supplied: frobnicate");
  ExpectRefusal(RefuseChat(R"("frobnicate":null)"), "frobnicate", "Unrecognized request argument supplied: frobnicate");
  ExpectRefusal(RefuseChat(R"("min_tokens":1)"), "min_tokens", "Unrecognized");
}

TEST(OpenAiRequest, StreamOptions) {
  ExpectRefusal(RefuseCompletion(R"("stream_options":{"include_usage":true})"), "stream_options",
                "stream_options is only allowed when stream is true");
  ExpectRefusal(RefuseChat(R"("stream":false,"stream_options":{})"), "stream_options", "only allowed when stream is true");
  EXPECT_FALSE(Chat(R"("stream":true,"stream_options":{})").include_usage);
  EXPECT_FALSE(Chat(R"("stream":true,"stream_options":{"include_usage":null})").include_usage);
  EXPECT_TRUE(Chat(R"("stream":true,"stream_options":{"include_usage":true})").include_usage);
  ExpectRefusal(RefuseChat(R"("stream":true,"stream_options":{"include_usage":1})"), "stream_options.include_usage",
                "must be a boolean");
  ExpectRefusal(RefuseChat(R"("stream":true,"stream_options":{"include_obfuscation":true})"),
                "stream_options.include_obfuscation", "not supported");
  ExpectRefusal(RefuseChat(R"("stream":true,"stream_options":{"continuous_usage_stats":true})"),
                "stream_options.continuous_usage_stats", "not supported");
  EXPECT_TRUE(Chat(R"("stream":true,"stream_options":{"continuous_usage_stats":false})").stream);
  ExpectRefusal(RefuseChat(R"("stream":true,"stream_options":{"every":1})"), "stream_options.every",
                "Unrecognized request argument supplied: stream_options.every");
}

// --- the body as JSON ---------------------------------------------------------------------------

TEST(OpenAiRequest, MalformedBodiesAreRefused) {
  const auto refused = [](const std::string& body, const std::string& message_part) {
    SCOPED_TRACE(body);
    ExpectRefusal(Refuse(Route::kCompletions, body), "", message_part);
  };
  refused("", "the request body is empty");
  refused("  \n", "the request body is empty");
  refused("{", "not valid JSON");
  refused(R"({"prompt":"a",})", "not valid JSON");
  refused(R"({"prompt":"a"} x)", "not valid JSON");
  refused(R"({"prompt":tru})", "not valid JSON");
  refused(R"({"prompt":"a","temperature":NaN})", "not valid JSON");
  refused(R"({"prompt":"a","temperature":1e400})", "not valid JSON");
  refused("[1]", "the request body must be a JSON object, not an array");
  refused(R"("text")", "must be a JSON object, not a string");
  refused("null", "must be a JSON object, not a null");
  refused("{\"prompt\":\"a\xff\"}", "not valid UTF-8");
  refused("{\"prompt\":\"\xe2\x82\"}", "not valid UTF-8");       // a truncated character
  refused("{\"prompt\":\"\xed\xa0\x80\"}", "not valid UTF-8");   // a surrogate's encoding
  refused("{\"prompt\":\"\xc0\xaf\"}", "not valid UTF-8");       // an overlong one
  refused("{\"prompt\":\"a\"\xff}", "not valid JSON");           // outside a string
  refused(R"({"prompt":"\ud800"})", "not valid JSON");           // a lone surrogate escape
  EXPECT_EQ(Accept(Route::kCompletions, R"({"prompt":"\ud83d\ude00 \u00e9"})").prompt_text, "\xF0\x9F\x98\x80 \xC3\xA9");
}

TEST(OpenAiRequest, NestingIsBounded) {
  const auto nested = [](size_t depth) {  // the body object is one level
    return R"({"user":)" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
  };
  // 64 deep parses (and is then refused for user's type); 65 is refused before parsing.
  ExpectRefusal(Refuse(Route::kCompletions, nested(kMaxJsonDepth)), "user", "user must be a string, got an array");
  ExpectRefusal(Refuse(Route::kCompletions, nested(kMaxJsonDepth + 1)), "", "nests arrays and objects more than 64 deep");
  // Brackets inside strings are text.
  EXPECT_EQ(Accept(Route::kCompletions, R"({"prompt":")" + std::string(1000, '[') + R"(\"{{"})").prompt_text.size(), 1003u);
  // A bomb: 10 MB of '[' is refused at the 65th, without the parser's stacks.
  ExpectRefusal(Refuse(Route::kCompletions, std::string(10 << 20, '[')), "", "at byte 64");
}

TEST(OpenAiRequest, MutatedBodiesEndInARequestOrAnError) {
  // Random byte edits of real bodies: every one is accepted or refused, and a refusal's body is
  // JSON (its message may quote the bad bytes).
  const std::vector<std::string> seeds = {
      R"({"model":"m","prompt":[1,2,3],"stop":["a","b"],"logprobs":2,"stream":true,"stream_options":{"include_usage":true}})",
      R"({"messages":[{"role":"user","content":[{"type":"text","text":"h\u00e9"}]}],"max_completion_tokens":5,"top_k":-1})"};
  std::mt19937 random(1234);
  for (int i = 0; i < 20000; ++i) {
    std::string body = seeds[i % seeds.size()];
    for (int edits = 1 + static_cast<int>(random() % 4); edits > 0; --edits) {
      const size_t at = random() % body.size();
      switch (random() % 3) {
        case 0: body[at] = static_cast<char>(random() % 256); break;
        case 1: body.erase(at, 1 + random() % 3); break;
        default: body.insert(at, 1, "[]{}\",:0-e\\\xff\xc3"[random() % 14]); break;
      }
      if (body.empty()) body.push_back('{');
    }
    const Route route = i % 2 ? Route::kChatCompletions : Route::kCompletions;
    auto parsed = ParseRequest(route, body, ModelDefaults(), kLimits);
    if (auto* error = std::get_if<ApiError>(&parsed)) {
      ASSERT_EQ(error->http_status, 400) << body;
      ASSERT_FALSE(json::parse(ErrorBody(*error), nullptr, false).is_discarded()) << body;
    }
  }
}

// --- errors --------------------------------------------------------------------------------------

TEST(OpenAiError, BodyIsOpenAisErrorObject) {
  ApiError e = InvalidRequest("temperature", "temperature must be in [0, 2], got 3");
  EXPECT_EQ(json::parse(ErrorBody(e)),
            json::parse(R"({"error":{"message":"temperature must be in [0, 2], got 3","type":"invalid_request_error",)"
                        R"("param":"temperature","code":null}})"));
  e = ApiError{404, "The model 'x' does not exist", "not_found_error", "", "model_not_found"};
  EXPECT_EQ(ErrorBody(e), R"({"error":{"message":"The model 'x' does not exist","type":"not_found_error",)"
                          R"("param":null,"code":"model_not_found"}})");
  e.message = "bad \xff byte";
  EXPECT_EQ(json::parse(ErrorBody(e))["error"]["message"], "bad \xEF\xBF\xBD byte");
}

struct StatusCase {
  Status status;
  std::string prompt_param;
  int http_status;
  std::string type;
  std::string param;
  std::string code;
};

TEST(OpenAiError, FromStatusMapsEveryCode) {
  const std::vector<StatusCase> cases = {
      {InvalidArgument("temperature must be a finite number >= 0 (0 is greedy), got -1"), "prompt", 400,
       "invalid_request_error", "temperature", ""},
      {InvalidArgument("stop[2] is empty"), "prompt", 400, "invalid_request_error", "stop[2]", ""},
      {InvalidArgument("stop_token_ids[0] = 99 is outside the vocabulary [0, 10)"), "prompt", 400,
       "invalid_request_error", "stop_token_ids[0]", ""},
      {InvalidArgument("max_new_tokens must be in [1, 100], got 200"), "prompt", 400, "invalid_request_error",
       "max_tokens", ""},
      {InvalidArgument("prompt has 9000 tokens; the model's context limit is 4096 tokens including at least one generated"),
       "prompt", 400, "invalid_request_error", "prompt", "context_length_exceeded"},
      {InvalidArgument("prompt has 9000 tokens; this server accepts at most 100 (--max-prompt-tokens)"), "messages", 400,
       "invalid_request_error", "messages", "context_length_exceeded"},
      {InvalidArgument("prompt (10 tokens) + max_new_tokens (5000) exceeds the context limit of 4096 tokens"), "prompt",
       400, "invalid_request_error", "prompt", "context_length_exceeded"},
      {InvalidArgument("the rendered chat has more than 4095 tokens; the model's context limit is 4096 tokens"),
       "messages", 400, "invalid_request_error", "messages", "context_length_exceeded"},
      {InvalidArgument("chat.messages: the template raised: roles must alternate"), "messages", 400,
       "invalid_request_error", "messages", ""},
      {InvalidArgument("prompt token_ids[3] = 99999 is outside the vocabulary [0, 32000)"), "prompt", 400,
       "invalid_request_error", "prompt", ""},
      {InvalidArgument("something else entirely"), "prompt", 400, "invalid_request_error", "", ""},
      {InvalidArgument("stopwatch: not a field"), "prompt", 400, "invalid_request_error", "", ""},
      {OutOfRange("the prompt has more than 10 tokens"), "prompt", 400, "invalid_request_error", "prompt", ""},
      {FailedPrecondition("stop strings need a tokenizer: token ids only"), "prompt", 400, "invalid_request_error",
       "stop", ""},
      {Status(StatusCode::kUnauthenticated, "missing API key"), "prompt", 401, "invalid_request_error", "",
       "invalid_api_key"},
      {NotFound("no such model"), "prompt", 404, "not_found_error", "", ""},
      {ResourceExhausted("the request queue is full (8 waiting, --max-queue); retry later"), "prompt", 429,
       "rate_limit_error", "", "rate_limit_exceeded"},
      {ResourceExhausted("prompt (100 tokens) + max_new_tokens (9000) exceeds the KV cache capacity of 4096 tokens"),
       "prompt", 400, "invalid_request_error", "prompt", "context_length_exceeded"},
      {Status(StatusCode::kUnavailable, "the server is shutting down"), "prompt", 503, "server_error", "", ""},
      {Status(StatusCode::kDeadlineExceeded, "the request's deadline passed"), "prompt", 504, "server_error", "", ""},
      {Cancelled("cancelled"), "prompt", 499, "invalid_request_error", "", ""},
      {Internal("bug"), "prompt", 500, "server_error", "", ""},
      {DataLoss("bad weights"), "prompt", 500, "server_error", "", ""},
      {Unimplemented("no"), "prompt", 500, "server_error", "", ""},
  };
  for (const StatusCase& c : cases) {
    SCOPED_TRACE(c.status.ToString());
    const ApiError e = FromStatus(c.status, c.prompt_param);
    EXPECT_EQ(e.http_status, c.http_status);
    EXPECT_EQ(e.type, c.type);
    EXPECT_EQ(e.param, c.param);
    EXPECT_EQ(e.code, c.code);
    EXPECT_EQ(e.message, c.status.message());
  }
  EXPECT_EQ(FromStatus(InvalidArgument("prompt is empty")).param, "prompt");  // the default prompt_param
  EXPECT_EQ(FromStatus(Internal("")).message, "INTERNAL");
}

// --- responses -----------------------------------------------------------------------------------

TokenOutput Token(int32_t id, std::string text, float logprob = -0.5f,
                  std::vector<std::pair<int32_t, float>> top = {}) {
  return {id, std::move(text), logprob, std::move(top)};
}

GenerationResult Result(FinishReason reason, std::string text, std::vector<int32_t> ids) {
  GenerationResult r;
  r.finish_reason = reason;
  r.text = std::move(text);
  r.token_ids = std::move(ids);
  r.prompt_tokens = 5;
  r.cached_prompt_tokens = 2;
  return r;
}

ResponseContext Context(Route route, bool include_usage = false, bool logprobs = false, int top_logprobs = 0) {
  ResponseContext c;
  c.route = route;
  c.id = route == Route::kChatCompletions ? "chatcmpl-1" : "cmpl-1";
  c.created = 1700000000;
  c.model = "tiny";
  c.include_usage = include_usage;
  c.logprobs = logprobs;
  c.top_logprobs = top_logprobs;
  // Token 9 is half of a character (the first two bytes of U+20AC), as a byte-level token can be.
  c.token_text = [](int32_t id) -> std::string {
    switch (id) {
      case 9: return "\xE2\x82";
      case 10: return "\xAC";
      default: return "t" + std::to_string(id);
    }
  };
  return c;
}

constexpr char kChatHead[] = R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"tiny",)";
constexpr char kCompletionHead[] = R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"tiny",)";

TEST(OpenAiResponse, ChatStreamBytes) {
  ResponseWriter w(Context(Route::kChatCompletions, /*include_usage=*/true));
  EXPECT_EQ(w.StreamStart(), std::string("data: ") + kChatHead +
                                 R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,)"
                                 R"("finish_reason":null}],"usage":null})" + "\n\n");
  const std::vector<TokenOutput> tokens = {Token(1, "Hel"), Token(2, "lo \"x\"")};
  EXPECT_EQ(w.StreamTokens(tokens), std::string("data: ") + kChatHead +
                                        R"("choices":[{"index":0,"delta":{"content":"Hello \"x\""},"logprobs":null,)"
                                        R"("finish_reason":null}],"usage":null})" + "\n\n");
  EXPECT_EQ(w.StreamTokens({}), "");
  const std::vector<TokenOutput> held_back = {Token(3, "")};
  EXPECT_EQ(w.StreamTokens(held_back), "");
  EXPECT_EQ(w.StreamEnd(Result(FinishReason::kEos, "Hello \"x\"", {1, 2, 3})),
            std::string("data: ") + kChatHead +
                R"("choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})" + "\n\n" +
                "data: " + kChatHead +
                R"("choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,)"
                R"("prompt_tokens_details":{"cached_tokens":2}}})" + "\n\n" + "data: [DONE]\n\n");
}

TEST(OpenAiResponse, ChatStreamWithoutUsageHasNoUsageField) {
  ResponseWriter w(Context(Route::kChatCompletions));
  EXPECT_EQ(w.StreamStart(), std::string("data: ") + kChatHead +
                                 R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,)"
                                 R"("finish_reason":null}]})" + "\n\n");
  EXPECT_EQ(w.StreamEnd(Result(FinishReason::kLength, "", {1})),
            std::string("data: ") + kChatHead +
                R"("choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]})" + "\n\n" +
                "data: [DONE]\n\n");
}

TEST(OpenAiResponse, CompletionStreamBytes) {
  ResponseWriter w(Context(Route::kCompletions, /*include_usage=*/true));
  EXPECT_EQ(w.StreamStart(), "");
  const std::vector<TokenOutput> tokens = {Token(1, "a\n")};
  EXPECT_EQ(w.StreamTokens(tokens), std::string("data: ") + kCompletionHead +
                                        R"("choices":[{"index":0,"text":"a\n","logprobs":null,"finish_reason":null}],)"
                                        R"("usage":null})" + "\n\n");
  EXPECT_EQ(w.StreamEnd(Result(FinishReason::kStop, "a\n", {1, 2})),
            std::string("data: ") + kCompletionHead +
                R"("choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"stop"}],"usage":null})" + "\n\n" +
                "data: " + kCompletionHead +
                R"("choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,)"
                R"("prompt_tokens_details":{"cached_tokens":2}}})" + "\n\n" + "data: [DONE]\n\n");
}

TEST(OpenAiResponse, FinishReasons) {
  const auto reason = [](FinishReason r) {
    ResponseWriter w(Context(Route::kChatCompletions));
    return json::parse(w.Body(Result(r, "", {})))["choices"][0]["finish_reason"].get<std::string>();
  };
  EXPECT_EQ(reason(FinishReason::kEos), "stop");
  EXPECT_EQ(reason(FinishReason::kStop), "stop");
  EXPECT_EQ(reason(FinishReason::kLength), "length");
  EXPECT_EQ(reason(FinishReason::kCancelled), "abort");
}

TEST(OpenAiResponse, ChatBody) {
  ResponseWriter w(Context(Route::kChatCompletions));
  w.Add(Token(1, "Hi"));
  EXPECT_EQ(w.Body(Result(FinishReason::kEos, "Hi", {1, 2})),
            R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"tiny",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"logprobs":null,)"
            R"("finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,)"
            R"("prompt_tokens_details":{"cached_tokens":2}}})");
}

TEST(OpenAiResponse, CompletionBody) {
  ResponseWriter w(Context(Route::kCompletions, /*include_usage=*/true));  // include_usage is for streams
  EXPECT_EQ(w.Body(Result(FinishReason::kLength, "caf\xC3\xA9", {1, 2, 3})),
            R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"tiny",)"
            "\"choices\":[{\"index\":0,\"text\":\"caf\xC3\xA9\",\"logprobs\":null,\"finish_reason\":\"length\"}],"
            R"("usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":2}}})");
}

TEST(OpenAiResponse, LogprobValues) {
  EXPECT_EQ(json(LogprobValue(-0.1f)).dump(), "-0.1");
  EXPECT_EQ(json(LogprobValue(0.0f)).dump(), "0.0");
  EXPECT_EQ(LogprobValue(-std::numeric_limits<float>::infinity()), -9999.0);
  EXPECT_EQ(LogprobValue(std::nanf("")), -9999.0);
  EXPECT_EQ(static_cast<float>(LogprobValue(-1.2345678f)), -1.2345678f);
}

TEST(OpenAiResponse, ChatLogprobsGiveTokensBytesAndAlternatives) {
  ResponseWriter w(Context(Route::kChatCompletions, false, /*logprobs=*/true, /*top_logprobs=*/2));
  // The engine holds token 9's half character back; it comes out whole with token 10.
  const std::vector<TokenOutput> tokens = {
      Token(9, "", -0.25f, {{9, -0.25f}, {4, -2.0f}, {5, -3.0f}}),
      Token(10, "\xE2\x82\xAC", -std::numeric_limits<float>::infinity(), {{10, -0.5f}})};
  const json chunk = json::parse(w.StreamTokens(tokens).substr(6));
  EXPECT_EQ(chunk["choices"][0]["delta"]["content"], "\xE2\x82\xAC");
  EXPECT_EQ(chunk["choices"][0]["logprobs"], json::parse(R"({"content":[
      {"token":"\ufffd","logprob":-0.25,"bytes":[226,130],"top_logprobs":[
          {"token":"\ufffd","logprob":-0.25,"bytes":[226,130]},{"token":"t4","logprob":-2.0,"bytes":[116,52]}]},
      {"token":"\ufffd","logprob":-9999.0,"bytes":[172],"top_logprobs":[
          {"token":"\ufffd","logprob":-0.5,"bytes":[172]}]}],"refusal":null})"));
  // Logprobs on: a chunk whose tokens have no text yet still carries their logprobs.
  const std::vector<TokenOutput> silent = {Token(3, "", -1.0f)};
  const json empty_text = json::parse(w.StreamTokens(silent).substr(6));
  EXPECT_EQ(empty_text["choices"][0]["delta"]["content"], "");
  EXPECT_EQ(empty_text["choices"][0]["logprobs"]["content"].size(), 1u);

  ResponseWriter whole(Context(Route::kChatCompletions, false, true, 0));
  whole.Add(Token(1, "a", -0.5f, {{1, -0.5f}}));
  whole.Add(Token(2, "b", -1.5f));
  const json body = json::parse(whole.Body(Result(FinishReason::kEos, "ab", {1, 2})));
  EXPECT_EQ(body["choices"][0]["logprobs"], json::parse(R"({"content":[
      {"token":"t1","logprob":-0.5,"bytes":[116,49],"top_logprobs":[]},
      {"token":"t2","logprob":-1.5,"bytes":[116,50],"top_logprobs":[]}],"refusal":null})"));
}

TEST(OpenAiResponse, CompletionLogprobsAreTheLegacyFormat) {
  ResponseWriter w(Context(Route::kCompletions, false, /*logprobs=*/true, /*top_logprobs=*/3));
  // Offsets count code points of the text before each token: "é" is one.
  w.Add(Token(1, "\xC3\xA9", -0.5f, {{1, -0.5f}, {2, -1.0f}}));
  w.Add(Token(9, "", -0.25f, {{9, -0.25f}, {10, -0.75f}, {3, -2.0f}, {4, -3.0f}}));  // both fragments are U+FFFD
  w.Add(Token(10, "\xE2\x82\xAC", -0.125f));
  w.Add(Token(4, "x", -1.0f));
  const json body = json::parse(w.Body(Result(FinishReason::kStop, "\xC3\xA9\xE2\x82\xACx", {1, 9, 10, 4})));
  EXPECT_EQ(body["choices"][0]["logprobs"], json::parse(R"({
      "tokens":["t1","\ufffd","\ufffd","t4"],
      "token_logprobs":[-0.5,-0.25,-0.125,-1.0],
      "top_logprobs":[{"t1":-0.5,"t2":-1.0},{"\ufffd":-0.25,"t3":-2.0},{},{}],
      "text_offset":[0,1,1,2]})"));

  ResponseWriter stream(Context(Route::kCompletions, false, true, 0));
  const std::vector<TokenOutput> first = {Token(1, "ab", -0.5f)};
  const std::vector<TokenOutput> second = {Token(2, "c", -0.5f)};
  (void)stream.StreamTokens(first);
  const json chunk = json::parse(stream.StreamTokens(second).substr(6));
  EXPECT_EQ(chunk["choices"][0]["logprobs"], json::parse(
      R"({"tokens":["t2"],"token_logprobs":[-0.5],"top_logprobs":[{}],"text_offset":[2]})"));
}

TEST(OpenAiResponse, ModelList) {
  EXPECT_EQ(ResponseWriter::ModelList("tiny", 1700000000, 4096),
            R"({"object":"list","data":[{"id":"tiny","object":"model","created":1700000000,"owned_by":"bptserve",)"
            R"("root":"tiny","parent":null,"max_model_len":4096}]})");
}

TEST(OpenAiResponse, CommentsAndStreamErrors) {
  EXPECT_EQ(ResponseWriter::StreamComment("keep-alive"), ": keep-alive\n\n");
  EXPECT_EQ(ResponseWriter::StreamComment("two\nlines\r"), ": two lines \n\n");
  ApiError e = FromStatus(Status(StatusCode::kUnavailable, "the server is shutting down"));
  EXPECT_EQ(ResponseWriter::StreamError(e),
            R"(data: {"error":{"message":"the server is shutting down","type":"server_error","param":null,"code":null}})"
            "\n\ndata: [DONE]\n\n");
}

// --- the openai SDK reads all of it -------------------------------------------------------------

void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

TEST(OpenAiSdk, ParsesEveryResponse) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("openai_protocol_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::vector<TokenOutput> tokens = {Token(9, "", -0.25f, {{9, -0.25f}, {4, -2.0f}}),
                                           Token(10, "\xE2\x82\xAC", -0.5f, {{10, -0.5f}, {9, -1.0f}}),
                                           Token(4, " ok", -std::numeric_limits<float>::infinity(), {{4, -1.0f}})};
  const GenerationResult result = Result(FinishReason::kEos, "\xE2\x82\xAC ok", {9, 10, 4, 2});
  for (const Route route : {Route::kCompletions, Route::kChatCompletions}) {
    const bool chat = route == Route::kChatCompletions;
    ResponseWriter whole(Context(route, false, true, 2));
    for (const TokenOutput& t : tokens) whole.Add(t);
    WriteFile(dir / (chat ? "chat_completion.json" : "completion.json"), whole.Body(result));
    ResponseWriter stream(Context(route, /*include_usage=*/true, true, 2));
    std::string sse = stream.StreamStart() + ResponseWriter::StreamComment("keep-alive");
    for (const TokenOutput& t : tokens) sse += stream.StreamTokens(std::span<const TokenOutput>(&t, 1));
    sse += stream.StreamEnd(result);
    WriteFile(dir / (chat ? "chat_stream.sse" : "completion_stream.sse"), sse);
  }
  WriteFile(dir / "models.json", ResponseWriter::ModelList("tiny", 1700000000, 4096));
  const ApiError error = InvalidRequest("temperature", "temperature must be in [0, 2], got 3");
  WriteFile(dir / "error.json", ErrorBody(error));
  ResponseWriter failing(Context(Route::kChatCompletions));
  WriteFile(dir / "error_stream.sse",
            failing.StreamStart() + ResponseWriter::StreamError(FromStatus(Internal("the engine failed"))));

  const std::string command = std::string(BPTSERVE_PYTHON) + " " + BPTSERVE_OPENAI_SDK_SCRIPT + " " + dir.string();
  const int status = std::system(command.c_str());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(status)) << command;
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "the openai Python package is not installed";
  EXPECT_EQ(WEXITSTATUS(status), 0) << command;
}

}  // namespace
}  // namespace bpt::server::openai
